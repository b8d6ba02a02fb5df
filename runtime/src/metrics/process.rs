//! The `process_*` metrics every Prometheus client library exports, for kestrel's own
//! process: CPU time, resident memory, threads and file descriptors against their limit.
//! Read at each scrape from `getrusage`/`getrlimit` and `/proc/self` (Linux); a value that
//! cannot be read is left out rather than reported as 0.

use nix::sys::resource::{Resource, UsageWho, getrlimit, getrusage};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// What one scrape read.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub threads: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
}

impl ProcessStats {
    /// This process, now.
    pub fn read() -> ProcessStats {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        };
        ProcessStats {
            cpu_seconds: getrusage(UsageWho::RUSAGE_SELF).ok().map(|u| {
                let (user, system) = (u.user_time(), u.system_time());
                (user.tv_sec() + system.tv_sec()) as f64
                    + (user.tv_usec() + system.tv_usec()) as f64 / 1e6
            }),
            resident_bytes: field("VmRSS:").map(|kib| kib * 1024),
            threads: field("Threads:"),
            open_fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|d| d.count() as u64),
            max_fds: getrlimit(Resource::RLIMIT_NOFILE)
                .ok()
                .map(|(soft, _)| soft),
        }
    }

    /// Registers the families it has.
    pub fn register(&self, registry: &mut Registry) {
        if let Some(v) = self.cpu_seconds {
            registry.register(
                "process_cpu_seconds",
                "User and system CPU time kestrel has used, in seconds",
                ConstCounter::new(v),
            );
        }
        let mut gauge = |name: &str, help: &str, value: Option<u64>| {
            if let Some(v) = value {
                registry.register(name, help, ConstGauge::new(v));
            }
        };
        gauge(
            "process_resident_memory_bytes",
            "Resident memory, in bytes",
            self.resident_bytes,
        );
        gauge("process_threads", "Threads of the process", self.threads);
        gauge("process_open_fds", "Open file descriptors", self.open_fds);
        gauge(
            "process_max_fds",
            "The limit on open file descriptors",
            self.max_fds,
        );
    }
}
