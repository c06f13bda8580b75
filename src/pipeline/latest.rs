//! A one-slot mailbox between capture and inference where the newest frame wins: when the
//! detector is busy, the waiting frame is replaced (and counted), never queued behind.

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};

/// Sending half. `Blocking` is for as-fast-as-possible replay, where no frame may be lost.
pub struct LatestSender<T> {
    tx: Sender<T>,
    steal: Receiver<T>,
    blocking: bool,
}

/// A slot of one. Returns the sender and the receiver the consumer reads with.
pub fn latest<T>(blocking: bool) -> (LatestSender<T>, Receiver<T>) {
    let (tx, rx) = bounded(1);
    (
        LatestSender {
            tx,
            steal: rx.clone(),
            blocking,
        },
        rx,
    )
}

impl<T> LatestSender<T> {
    /// Puts `item` in the slot. Returns how many stale items it displaced (0 or 1), or `Err`
    /// when the consumer is gone.
    ///
    /// # Errors
    /// The receiver was dropped.
    pub fn send(&self, item: T) -> Result<u64, T> {
        if self.blocking {
            return self.tx.send(item).map(|_| 0).map_err(|e| e.into_inner());
        }
        let mut item = item;
        let mut dropped = 0;
        loop {
            match self.tx.try_send(item) {
                Ok(()) => return Ok(dropped),
                Err(TrySendError::Disconnected(i)) => return Err(i),
                Err(TrySendError::Full(i)) => {
                    if self.steal.try_recv().is_ok() {
                        dropped += 1;
                    }
                    item = i;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_wins_and_stale_are_counted() {
        let (tx, rx) = latest(false);
        assert_eq!(tx.send(1).unwrap(), 0);
        assert_eq!(tx.send(2).unwrap(), 1);
        assert_eq!(tx.send(3).unwrap(), 1);
        assert_eq!(rx.try_recv().unwrap(), 3);
        assert!(rx.try_recv().is_err());
        drop(rx);
    }

    #[test]
    fn blocking_mode_loses_nothing() {
        let (tx, rx) = latest(true);
        let h = std::thread::spawn(move || (0..50).map(|i| tx.send(i).unwrap()).sum::<u64>());
        let got: Vec<i32> = rx.iter().collect();
        assert_eq!(h.join().unwrap(), 0);
        assert_eq!(got, (0..50).collect::<Vec<_>>());
    }
}
