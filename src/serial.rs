//! A first-come, first-served async lock for one thread: what makes the work of one entity's
//! Durable Object run one piece at a time. A Durable Object may start its next request at
//! every `await` of a KV read or a fetch (its input gate only holds during its own storage
//! operations), so without this two events of one user would interleave their
//! read-modify-write of the user's record.
//!
//! Pure (no runtime types), so it is tested natively. Futures are not `Send`: Workers runs one
//! thread.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Hands out turns in the order they were asked for. A turn lasts as long as its [`Turn`].
#[derive(Debug, Default)]
pub struct FifoLock {
    inner: RefCell<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The ticket the next `lock()` gets.
    next: u64,
    /// The ticket whose turn it is (it may not have been polled since).
    serving: u64,
    /// Wakers of tickets waiting for their turn. A list, not a map: a queue holds a handful,
    /// and a `BTreeMap` or `BTreeSet` per key type compiles its own copy of the tree's code
    /// into the wasm (bench/RESULTS.md, notes).
    waiting: Vec<(u64, Waker)>,
    /// Tickets given up before their turn came (their future dropped), skipped when reached.
    abandoned: Vec<u64>,
}

impl Inner {
    /// The current turn is over: the next ticket not given up is woken.
    fn advance(&mut self) {
        self.serving += 1;
        while self.forget_abandoned(self.serving) {
            self.serving += 1;
        }
        if let Some(waker) = self.take_waker(self.serving) {
            waker.wake();
        }
    }

    /// Whether `ticket` was given up; it is forgotten either way.
    fn forget_abandoned(&mut self, ticket: u64) -> bool {
        let at = self.abandoned.iter().position(|&t| t == ticket);
        at.map(|at| self.abandoned.swap_remove(at)).is_some()
    }

    /// The waker `ticket` left, taken out of the list.
    fn take_waker(&mut self, ticket: u64) -> Option<Waker> {
        let at = self.waiting.iter().position(|(t, _)| *t == ticket)?;
        Some(self.waiting.swap_remove(at).1)
    }

    /// `ticket`'s waker, in place of any it left before.
    fn set_waker(&mut self, ticket: u64, waker: &Waker) {
        match self.waiting.iter_mut().find(|(t, _)| *t == ticket) {
            Some((_, old)) => old.clone_from(waker),
            None => self.waiting.push((ticket, waker.clone())),
        }
    }
}

impl FifoLock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits for this caller's turn, after every caller that asked before it.
    pub fn lock(&self) -> Acquire<'_> {
        let mut inner = self.inner.borrow_mut();
        let ticket = inner.next;
        inner.next += 1;
        Acquire {
            lock: self,
            ticket,
            granted: false,
        }
    }

    /// How many callers hold or wait for a turn (for tests and the log).
    pub fn queued(&self) -> u64 {
        let inner = self.inner.borrow();
        inner.next - inner.serving - inner.abandoned.len() as u64
    }
}

/// The wait for a turn; resolves to the [`Turn`].
#[derive(Debug)]
pub struct Acquire<'a> {
    lock: &'a FifoLock,
    ticket: u64,
    granted: bool,
}

impl<'a> Future for Acquire<'a> {
    type Output = Turn<'a>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Turn<'a>> {
        let lock = self.lock;
        let mut inner = lock.inner.borrow_mut();
        if inner.serving == self.ticket {
            drop(inner);
            self.granted = true;
            Poll::Ready(Turn { lock })
        } else {
            inner.set_waker(self.ticket, cx.waker());
            Poll::Pending
        }
    }
}

impl Drop for Acquire<'_> {
    /// A wait given up (its request cancelled) must not stop the queue behind it.
    fn drop(&mut self) {
        if self.granted {
            return;
        }
        let mut inner = self.lock.inner.borrow_mut();
        inner.take_waker(self.ticket);
        if inner.serving == self.ticket {
            inner.advance();
        } else if !inner.abandoned.contains(&self.ticket) {
            inner.abandoned.push(self.ticket);
        }
    }
}

/// One caller's turn; the next caller's begins when it is dropped.
#[derive(Debug)]
pub struct Turn<'a> {
    lock: &'a FifoLock,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.lock.inner.borrow_mut().advance();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::task::Wake;

    struct Noop;
    impl Wake for Noop {
        fn wake(self: std::sync::Arc<Self>) {}
    }

    /// Polls every future once per round until all are done: first in order (so they ask in
    /// order), then always in reverse, so only the lock can make them finish in order.
    fn run_all(mut futures: Vec<Pin<Box<dyn Future<Output = ()> + '_>>>) {
        let waker = Waker::from(std::sync::Arc::new(Noop));
        let mut cx = Context::from_waker(&waker);
        let mut done = vec![false; futures.len()];
        for round in 0..1000 {
            let order: Vec<usize> = if round == 0 {
                (0..futures.len()).collect()
            } else {
                (0..futures.len()).rev().collect()
            };
            for i in order {
                if !done[i] && futures[i].as_mut().poll(&mut cx).is_ready() {
                    done[i] = true;
                }
            }
            if done.iter().all(|d| *d) {
                return;
            }
        }
        panic!("the futures did not finish");
    }

    /// A piece of work that reads, yields (as a KV call would), then writes what it read plus
    /// its own mark: interleaved, marks are lost.
    async fn read_yield_write(lock: &FifoLock, log: &RefCell<Vec<u32>>, mark: u32) {
        let _turn = lock.lock().await;
        let seen = log.borrow().clone();
        Yield(false).await;
        let mut next = seen;
        next.push(mark);
        *log.borrow_mut() = next;
    }

    struct Yield(bool);
    impl Future for Yield {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.0 {
                Poll::Ready(())
            } else {
                self.0 = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }

    #[test]
    fn turns_run_one_at_a_time_in_the_order_asked() {
        let lock = FifoLock::new();
        let log = RefCell::new(Vec::new());
        let futures: Vec<Pin<Box<dyn Future<Output = ()>>>> = (0..8)
            .map(|mark| Box::pin(read_yield_write(&lock, &log, mark)) as Pin<Box<_>>)
            .collect();
        run_all(futures);
        // Every read-modify-write saw the one before it: nothing lost, first come first served.
        assert_eq!(*log.borrow(), (0..8).collect::<Vec<_>>());
        assert_eq!(lock.queued(), 0);
    }

    #[test]
    fn without_the_lock_the_same_work_loses_writes() {
        // The check of the test above: the same work unserialised loses marks.
        let log = Rc::new(RefCell::new(Vec::new()));
        let work = |mark: u32| {
            let log = Rc::clone(&log);
            Box::pin(async move {
                let seen = log.borrow().clone();
                Yield(false).await;
                let mut next = seen;
                next.push(mark);
                *log.borrow_mut() = next;
            }) as Pin<Box<dyn Future<Output = ()>>>
        };
        run_all((0..8).map(work).collect());
        assert!(log.borrow().len() < 8);
    }

    #[test]
    fn a_wait_given_up_does_not_stop_the_queue() {
        let lock = FifoLock::new();
        let waker = Waker::from(std::sync::Arc::new(Noop));
        let mut cx = Context::from_waker(&waker);
        let mut first = Box::pin(lock.lock());
        let Poll::Ready(turn) = first.as_mut().poll(&mut cx) else {
            panic!("the first caller gets the lock at once");
        };
        let mut second = Box::pin(lock.lock());
        let mut third = Box::pin(lock.lock());
        assert!(second.as_mut().poll(&mut cx).is_pending());
        assert!(third.as_mut().poll(&mut cx).is_pending());
        drop(second);
        assert_eq!(lock.queued(), 2);
        drop(turn);
        assert!(
            third.as_mut().poll(&mut cx).is_ready(),
            "the third skips the abandoned second"
        );
        // Given up when its turn had come but before it was polled: the next one goes on.
        let fourth = lock.lock();
        drop(third);
        drop(fourth);
        let mut fifth = Box::pin(lock.lock());
        assert!(fifth.as_mut().poll(&mut cx).is_ready());
    }
}
