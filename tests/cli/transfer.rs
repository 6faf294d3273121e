//! `transfer` against the fake ThoughtSpot: objects listed and moved over
//! REST v2, v1 on a cluster without v2 writes, and what ThoughtSpot refuses.

use predicates::prelude::*;
use predicates::str::contains;

use crate::fake::{Data, FakeThoughtSpot, Faults};
use crate::fetch::Scratch;

fn cluster() -> FakeThoughtSpot {
    FakeThoughtSpot::start_on(Data::generated(6, 3, 2), 0, Faults::default())
}

fn transfer(
    scratch: &Scratch,
    server: &FakeThoughtSpot,
    extra: &[&str],
) -> assert_cmd::assert::Assert {
    scratch
        .with_password(server)
        .args(["transfer", "--profile", "env"])
        .args(extra)
        .assert()
}

#[test]
fn a_dry_run_lists_and_a_transfer_moves_every_object() {
    let server = cluster();
    let scratch = Scratch::new();
    let given = server.state.give_objects("user1@example.com", 3);
    let args = ["--from", "user1@example.com", "--to", "user3@example.com"];
    let assert = transfer(&scratch, &server, &[&args[..], &["--dry-run"]].concat()).success();
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    for guid in &given {
        assert!(stdout.contains(guid.as_str()), "{stdout}");
    }
    assert_eq!(server.state.owned_objects("user1@example.com").len(), 3);
    assert!(server.state.principal_writes().is_empty());
    transfer(&scratch, &server, &args)
        .success()
        .stderr(contains("transferred 3 objects"));
    assert!(server.state.owned_objects("user1@example.com").is_empty());
    assert_eq!(server.state.owned_objects("user3@example.com").len(), 3);
    // Again: nothing left to move.
    transfer(&scratch, &server, &args)
        .success()
        .stderr(contains("owns no objects"));
}

#[test]
fn a_cluster_without_v2_writes_transfers_over_v1() {
    // The fixtures serve v1 too (session/login, user/list).
    let server = FakeThoughtSpot::start_on(crate::fetch::fixtures(), 0, Faults::default());
    server.state.set(|f| f.no_v2_writes = true);
    let scratch = Scratch::new();
    server.state.give_objects("ana.user0@example.com", 2);
    transfer(
        &scratch,
        &server,
        &[
            "--from",
            "ana.user0@example.com",
            "--to",
            "dara.user3@example.com",
        ],
    )
    .success()
    .stderr(contains("REST v1"));
    assert_eq!(
        server.state.owned_objects("dara.user3@example.com").len(),
        2
    );
    assert!(
        server.state.seen().iter().any(|s| s
            .path
            .starts_with("/callosum/v1/tspublic/v1/user/transfer/ownership")),
        "v1 transfer used"
    );
}

#[test]
fn what_thoughtspot_refuses_is_refused_with_a_reason() {
    let server = cluster();
    let scratch = Scratch::new();
    for (from, to, says) in [
        (
            "system",
            "user1@example.com",
            "system user and the administrative user",
        ),
        (
            "user1@example.com",
            "TSADMIN",
            "system user and the administrative user",
        ),
        ("user1@example.com", "User1@example.com", "the same user"),
    ] {
        transfer(&scratch, &server, &["--from", from, "--to", to])
            .code(2)
            .stderr(contains(says));
    }
    assert!(server.state.seen().is_empty(), "nothing was asked");
    transfer(
        &scratch,
        &server,
        &["--from", "nobody@example.com", "--to", "user1@example.com"],
    )
    .code(2)
    .stderr(contains("there is no user \"nobody@example.com\""));
    transfer(
        &scratch,
        &server,
        &["--from", "user1@example.com", "--to", "nobody@example.com"],
    )
    .code(2)
    .stderr(contains("there is no user \"nobody@example.com\"").and(contains("user1").not()));
}
