//! PLACEHOLDER (replaced by the real lock-free SPSC ring in this same change).
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError<T> {
    Full(T),
}

#[derive(Debug)]
pub struct Producer<T> {
    q: Arc<Mutex<VecDeque<T>>>,
    cap: usize,
}
#[derive(Debug)]
pub struct Consumer<T> {
    q: Arc<Mutex<VecDeque<T>>>,
}

pub fn channel<T: Copy + Send>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    let cap = capacity.next_power_of_two();
    let q = Arc::new(Mutex::new(VecDeque::with_capacity(cap)));
    (Producer { q: q.clone(), cap }, Consumer { q })
}

impl<T: Copy + Send> Producer<T> {
    pub fn push(&mut self, v: T) -> Result<(), PushError<T>> {
        let mut q = self.q.lock().unwrap();
        if q.len() == self.cap {
            return Err(PushError::Full(v));
        }
        q.push_back(v);
        Ok(())
    }
    pub fn capacity(&self) -> usize {
        self.cap
    }
    pub fn free_slots(&self) -> usize {
        self.cap - self.q.lock().unwrap().len()
    }
}

impl<T: Copy + Send> Consumer<T> {
    pub fn pop(&mut self) -> Option<T> {
        self.q.lock().unwrap().pop_front()
    }
    pub fn pop_batch(&mut self, max: usize, mut f: impl FnMut(T)) -> usize {
        let mut n = 0;
        while n < max {
            match self.pop() {
                Some(v) => f(v),
                None => break,
            }
            n += 1;
        }
        n
    }
    pub fn len(&self) -> usize {
        self.q.lock().unwrap().len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
