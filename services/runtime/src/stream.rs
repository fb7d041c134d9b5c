//! Response streams whose items are read from disk (issue 12, item 7): a
//! RocksDB scan, a file. Each item is made on a blocking thread only when
//! the client has taken the one before (the stream is polled), and the
//! thread is given back in between: a client that stops reading holds no
//! thread, only the stream's state (a cursor, an open file), and its place
//! among the method's calls in progress (`crate::limits`) until the
//! connection goes.

use std::pin::Pin;

/// A stream of gRPC response items.
pub type ItemStream<T> =
    Pin<Box<dyn futures::Stream<Item = Result<T, tonic::Status>> + Send + 'static>>;

/// The items `next` makes from `state`, one per poll, each on a blocking
/// thread: `Ok(Some(item))` an item, `Ok(None)` the end, `Err(status)` the
/// last item (an error ends the stream).
pub fn blocking_stream<S, T, F>(state: S, next: F) -> ItemStream<T>
where
    S: Send + 'static,
    T: Send + 'static,
    F: FnMut(&mut S) -> Result<Option<T>, tonic::Status> + Send + 'static,
{
    Box::pin(futures::stream::unfold(
        Some((state, next)),
        |slot| async move {
            let (mut state, mut next) = slot?;
            let made = tokio::task::spawn_blocking(move || {
                let item = next(&mut state);
                (state, next, item)
            })
            .await;
            match made {
                Ok((state, next, Ok(Some(item)))) => Some((Ok(item), Some((state, next)))),
                Ok((_, _, Ok(None))) => None,
                Ok((_, _, Err(status))) => Some((Err(status), None)),
                Err(_) => Some((Err(tonic::Status::internal("a read task failed")), None)),
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;
    use tokio_stream::StreamExt;

    /// A stream nobody reads makes nothing and holds no blocking thread:
    /// with one blocking thread in the runtime, other blocking work still
    /// runs while streams stand unread.
    #[test]
    fn an_unread_stream_holds_no_thread() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let made = Arc::new(AtomicU64::new(0));
            let mut streams = Vec::new();
            for _ in 0..4 {
                let made = made.clone();
                let mut s = blocking_stream(0u64, move |n: &mut u64| {
                    *n += 1;
                    made.fetch_add(1, Ordering::SeqCst);
                    Ok(Some(*n))
                });
                assert_eq!(s.next().await.unwrap().unwrap(), 1);
                streams.push(s);
            }
            let other =
                tokio::time::timeout(Duration::from_secs(5), tokio::task::spawn_blocking(|| 42))
                    .await
                    .expect("a blocking thread is free")
                    .unwrap();
            assert_eq!(other, 42);
            // One item made per item taken, none ahead.
            assert_eq!(made.load(Ordering::SeqCst), 4);
            let mut first = streams.swap_remove(0);
            assert_eq!(first.next().await.unwrap().unwrap(), 2);
            assert_eq!(made.load(Ordering::SeqCst), 5);
        });
    }

    #[tokio::test]
    async fn an_error_ends_the_stream() {
        let s = blocking_stream(0u32, |n: &mut u32| {
            *n += 1;
            match *n {
                1 | 2 => Ok(Some(*n)),
                _ => Err(tonic::Status::internal("broken")),
            }
        });
        let items: Vec<_> = s.collect().await;
        assert_eq!(items.len(), 3);
        assert_eq!(items[2].as_ref().unwrap_err().code(), tonic::Code::Internal);
    }

    #[tokio::test]
    async fn the_end_is_the_end() {
        let s = blocking_stream(0u32, |n: &mut u32| {
            *n += 1;
            Ok((*n <= 3).then_some(*n))
        });
        let items: Vec<u32> = s.map(Result::unwrap).collect().await;
        assert_eq!(items, vec![1, 2, 3]);
    }
}
