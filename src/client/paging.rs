//! Paging through a search API that answers with bare arrays and no total.
//!
//! The rules (DESIGN §5): advance by the rows actually received, and stop
//! only on an empty page, because a server may cap `record_size` below what
//! was asked, so a short page is not the end. An error on any page fails
//! the whole listing.
//!
//! To fetch concurrently without knowing the total, the first page is
//! fetched alone; its row count is the stride. Then windows of `window`
//! pages at consecutive strides are requested at once. Results are taken in
//! order: an empty page ends the listing; a short page ends the window
//! (pages after it would leave a gap), and the next request starts exactly
//! where the rows ended, alone, since the end is probably near.

use std::future::Future;

use bytes::Bytes;

use super::error::ClientError;

/// One page of a listing.
#[derive(Debug)]
pub(crate) struct Page {
    /// `record_offset` asked for.
    pub offset: u64,
    /// Rows received.
    pub rows: usize,
    /// The response body.
    pub body: Bytes,
}

/// What a page request returned, before it is checked.
pub(crate) struct Fetched {
    pub rows: usize,
    pub body: Bytes,
}

/// Lists every page. `fetch(offset, size)` requests one page (bounding
/// concurrency itself, e.g. with a semaphore shared by all listings);
/// `describe(offset)` names a page in errors.
pub(crate) async fn list_all<F, Fut>(
    page_size: u32,
    window: usize,
    fetch: F,
    describe: impl Fn(u64) -> (&'static str, String, String),
) -> Result<Vec<Page>, ClientError>
where
    F: Fn(u64, u32) -> Fut,
    Fut: Future<Output = Result<Fetched, ClientError>>,
{
    let mut pages: Vec<Page> = Vec::new();
    let first = checked(0, page_size, fetch(0, page_size).await?, None, &describe)?;
    if first.rows == 0 {
        return Ok(pages);
    }
    let stride = u32::try_from(first.rows)
        .unwrap_or(page_size)
        .min(page_size);
    let mut offset = first.rows as u64;
    pages.push(first);
    // After a short page the end is probably near: one page confirms it.
    let mut width = window.max(1);
    loop {
        let offsets: Vec<u64> = (0..width as u64)
            .map(|k| offset + k * u64::from(stride))
            .collect();
        let results =
            futures_util::future::join_all(offsets.iter().map(|&o| fetch(o, stride))).await;
        for (&at, result) in offsets.iter().zip(results) {
            let previous = pages.last().map(|p| &p.body);
            let page = checked(at, stride, result?, previous, &describe)?;
            if page.rows == 0 {
                return Ok(pages);
            }
            let short = page.rows < stride as usize;
            offset += page.rows as u64;
            pages.push(page);
            if short {
                break;
            }
        }
        width = if pages.last().is_some_and(|p| p.rows < stride as usize) {
            1
        } else {
            window.max(1)
        };
    }
}

/// Checks a page against the paging contract; a server that ignores
/// `record_size` or `record_offset` would otherwise make the listing loop
/// forever.
fn checked(
    offset: u64,
    size: u32,
    fetched: Fetched,
    previous: Option<&Bytes>,
    describe: &impl Fn(u64) -> (&'static str, String, String),
) -> Result<Page, ClientError> {
    let malformed = |reason: String| {
        let (method, path, context) = describe(offset);
        ClientError::Malformed {
            method,
            path,
            context,
            reason,
        }
    };
    if fetched.rows > size as usize {
        return Err(malformed(format!(
            "{} records for record_size {size}; the server ignores paging",
            fetched.rows
        )));
    }
    if fetched.rows > 0 && previous == Some(&fetched.body) {
        return Err(malformed(
            "the same records as the page before; the server ignores record_offset".into(),
        ));
    }
    Ok(Page {
        offset,
        rows: fetched.rows,
        body: fetched.body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A server over `total` rows that serves at most `cap` rows per page,
    /// recording every request.
    struct Server {
        total: u64,
        cap: u32,
        requests: Mutex<Vec<(u64, u32)>>,
    }

    impl Server {
        fn new(total: u64, cap: u32) -> Self {
            Self {
                total,
                cap,
                requests: Mutex::new(Vec::new()),
            }
        }

        async fn page(&self, offset: u64, size: u32) -> Result<Fetched, ClientError> {
            self.requests.lock().unwrap().push((offset, size));
            let end = (offset + u64::from(size.min(self.cap))).min(self.total);
            let rows: Vec<u64> = (offset.min(end)..end).collect();
            Ok(Fetched {
                rows: rows.len(),
                body: Bytes::from(serde_json::to_vec(&rows).unwrap()),
            })
        }

        fn list(&self, size: u32, window: usize) -> Vec<u64> {
            let pages = futures_executor(list_all(
                size,
                window,
                |o, s| self.page(o, s),
                |o| ("POST", "/x".to_owned(), format!(" (from {o})")),
            ))
            .unwrap();
            pages
                .iter()
                .flat_map(|p| serde_json::from_slice::<Vec<u64>>(&p.body).unwrap())
                .collect()
        }
    }

    fn futures_executor<T>(future: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn every_row_is_listed_once_whatever_the_cap_window_and_total() {
        for total in [0, 1, 9, 10, 11, 99, 100, 101, 1000] {
            for cap in [1, 3, 10, 1000] {
                for window in [1, 2, 4] {
                    let server = Server::new(total, cap);
                    let rows = server.list(10, window);
                    assert_eq!(
                        rows,
                        (0..total).collect::<Vec<_>>(),
                        "{total} {cap} {window}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_short_page_is_not_the_end() {
        // The server caps pages at 3 while 10 were asked: the first page is
        // short, yet the listing goes on until an empty page.
        let server = Server::new(7, 3);
        assert_eq!(server.list(10, 1), (0..7).collect::<Vec<_>>());
        let requests = server.requests.lock().unwrap().clone();
        assert_eq!(requests, vec![(0, 10), (3, 3), (6, 3), (7, 3)]);
    }

    #[test]
    fn windows_fetch_ahead_without_gaps() {
        let server = Server::new(25, 100);
        assert_eq!(server.list(10, 4), (0..25).collect::<Vec<_>>());
        let mut requests = server.requests.lock().unwrap().clone();
        requests.sort_unstable();
        // The first page alone, then one window of 4; the short page at 20
        // ends it, and one request at 25 finds the end.
        assert_eq!(
            requests,
            vec![(0, 10), (10, 10), (20, 10), (25, 10), (30, 10), (40, 10)]
        );
    }

    #[test]
    fn a_server_ignoring_offsets_is_an_error_not_a_loop() {
        let result = futures_executor(list_all(
            2,
            2,
            |_, _| async {
                Ok(Fetched {
                    rows: 2,
                    body: Bytes::from_static(b"[1,2]"),
                })
            },
            |o| ("POST", "/x".to_owned(), format!(" (from {o})")),
        ));
        let error = result.unwrap_err().to_string();
        assert!(error.contains("ignores record_offset"), "{error}");
    }

    #[test]
    fn an_error_on_any_page_fails_the_listing() {
        let result = futures_executor(list_all(
            2,
            2,
            |o, _| async move {
                if o == 4 {
                    Err(ClientError::Unsupported("boom".into()))
                } else {
                    Ok(Fetched {
                        rows: 2,
                        body: Bytes::from(format!("[{o},{}]", o + 1)),
                    })
                }
            },
            |o| ("POST", "/x".to_owned(), format!(" (from {o})")),
        ));
        assert_eq!(result.unwrap_err().to_string(), "boom");
    }
}
