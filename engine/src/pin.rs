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

#[cfg(test)]
mod tests {
    use super::*;

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
