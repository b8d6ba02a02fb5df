//! Pinning the calling thread to a core. Pinning is a start-up step: it may log.

/// What happened when a thread asked to be pinned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinOutcome {
    Pinned(usize),
    /// No core was requested.
    NotRequested,
    /// The core does not exist on this machine.
    NoSuchCore {
        requested: usize,
        available: usize,
    },
    /// The OS refused (containers, restricted cpusets).
    Refused(usize),
}

/// Pin the current thread to `core`, if given. Never fails the caller: a core that cannot
/// be had is a warning (`tracing::warn!`), and the thread runs unpinned.
pub fn pin_current_thread(core: Option<usize>, thread_name: &str) -> PinOutcome {
    let Some(requested) = core else {
        return PinOutcome::NotRequested;
    };
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let outcome = match cores.iter().find(|c| c.id == requested) {
        None => PinOutcome::NoSuchCore {
            requested,
            available: cores.len(),
        },
        Some(id) if core_affinity::set_for_current(*id) => PinOutcome::Pinned(requested),
        Some(_) => PinOutcome::Refused(requested),
    };
    match outcome {
        PinOutcome::Pinned(c) => tracing::info!(thread = thread_name, core = c, "thread pinned"),
        PinOutcome::NoSuchCore {
            requested,
            available,
        } => tracing::warn!(
            thread = thread_name,
            requested,
            available,
            "cannot pin: no such core; running unpinned (set a core below the count)"
        ),
        PinOutcome::Refused(c) => tracing::warn!(
            thread = thread_name,
            core = c,
            "cannot pin: the OS refused; running unpinned"
        ),
        PinOutcome::NotRequested => {}
    }
    outcome
}

/// Keeps the calling thread, and every thread it spawns from now on (they inherit the
/// mask), off `core`: the engine's, which it busy-polls. The session's other threads (the
/// gateway, the ops loop, metrics, control, alerts, the feed in split mode) then never take
/// the engine's core from it. Returns whether the mask was set; on a one-core machine, or
/// where the OS refuses, nothing changes (and says so).
pub fn keep_off_core(core: usize, who: &str) -> bool {
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let others: Vec<usize> = cores.iter().map(|c| c.id).filter(|&c| c != core).collect();
    if others.is_empty() || others.len() == cores.len() {
        return false;
    }
    // SAFETY: `cpu_set_t` is plain data, zeroed is the empty set; CPU_SET writes inside it
    // for ids below CPU_SETSIZE (checked); sched_setaffinity reads `size_of` bytes of it.
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in &others {
            if c < libc::CPU_SETSIZE as usize {
                libc::CPU_SET(c, &mut set);
            }
        }
        set
    };
    // SAFETY: pid 0 is the calling thread; `set` is a valid, initialised cpu_set_t.
    let ok =
        unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } == 0;
    if ok {
        tracing::info!(
            threads = who,
            engine_core = core,
            "kept off the engine's core"
        );
    } else {
        tracing::warn!(threads = who, engine_core = core, error = %std::io::Error::last_os_error(),
            "could not keep the other threads off the engine's core");
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread kept off a core, and the threads it spawns, run anywhere but there.
    #[test]
    fn a_thread_kept_off_a_core_and_its_children_never_run_there() {
        let cores = core_affinity::get_core_ids().unwrap_or_default().len();
        let allowed = std::thread::spawn(move || {
            let set = keep_off_core(cores - 1, "test");
            let child = std::thread::spawn(allowed_cores).join().unwrap();
            (set, allowed_cores(), child)
        })
        .join()
        .unwrap();
        if cores < 2 {
            assert!(!allowed.0, "one core: nothing to keep off");
            return;
        }
        assert!(allowed.0);
        assert!(!allowed.1.contains(&(cores - 1)), "{allowed:?}");
        assert_eq!(allowed.1, allowed.2, "inherited by a spawned thread");
        assert_eq!(allowed.1.len(), cores - 1);
    }

    fn allowed_cores() -> Vec<usize> {
        // SAFETY: as in `keep_off_core`: a zeroed set is filled by the kernel for this thread.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            assert_eq!(
                libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set),
                0
            );
            (0..libc::CPU_SETSIZE as usize)
                .filter(|&c| libc::CPU_ISSET(c, &set))
                .collect()
        }
    }

    #[test]
    fn a_missing_core_is_reported_not_fatal() {
        let out = std::thread::spawn(|| pin_current_thread(Some(100_000), "test"))
            .join()
            .unwrap();
        assert!(matches!(
            out,
            PinOutcome::NoSuchCore {
                requested: 100_000,
                ..
            }
        ));
        assert_eq!(pin_current_thread(None, "test"), PinOutcome::NotRequested);
    }

    #[test]
    fn pins_to_core_zero_where_the_os_allows() {
        let out = std::thread::spawn(|| pin_current_thread(Some(0), "test"))
            .join()
            .unwrap();
        assert!(
            matches!(out, PinOutcome::Pinned(0) | PinOutcome::Refused(0)),
            "{out:?}"
        );
    }
}
