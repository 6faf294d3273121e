//! Running independent pieces of work on all cores.

use std::thread::ScopedJoinHandle;

/// Applies `work` to every item, each on a thread of its own, and returns
/// the results in the items' order. A panic in any piece is re-raised here.
pub(crate) fn map<T: Send, R: Send>(
    items: impl IntoIterator<Item = T>,
    work: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    std::thread::scope(|scope| {
        let work = &work;
        let handles: Vec<_> = items
            .into_iter()
            .map(|item| scope.spawn(move || work(item)))
            .collect();
        handles.into_iter().map(join).collect()
    })
}

/// Waits for a scoped thread, re-raising its panic.
pub(crate) fn join<T>(handle: ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_keep_the_order_of_the_items() {
        assert_eq!(
            super::map(0..20, |i| i * i),
            (0..20).map(|i| i * i).collect::<Vec<_>>()
        );
    }
}
