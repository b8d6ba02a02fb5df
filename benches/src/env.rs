//! What machine a measurement ran on, and what the process could do to itself first
//! (lock memory, pin threads). Printed beside every result and stored in its JSON.

use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct Environment {
    pub cpu_model: String,
    pub cores: usize,
    /// `constant_tsc` and `nonstop_tsc` both present: the TSC ticks at a fixed rate in all states.
    pub invariant_tsc: bool,
    pub kernel: String,
    /// Cores the harness pinned its threads to (in thread order), or why it could not.
    pub pinning: Vec<String>,
    /// Whether `mlockall` succeeded, or why not.
    pub mlockall: String,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

impl Environment {
    pub fn probe() -> Environment {
        let cpuinfo = read("/proc/cpuinfo");
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .and_then(|r| r.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let flags = cpuinfo
            .lines()
            .find(|l| l.starts_with("flags"))
            .unwrap_or_default();
        let has = |f: &str| flags.split_whitespace().any(|x| x == f);
        Environment {
            cpu_model,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            invariant_tsc: has("constant_tsc") && has("nonstop_tsc"),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            pinning: Vec::new(),
            mlockall: lock_memory(),
        }
    }

    pub fn print(&self) {
        println!(
            "machine   {} × {} cores, kernel {}",
            self.cpu_model, self.cores, self.kernel
        );
        println!(
            "tsc       invariant: {}",
            if self.invariant_tsc {
                "yes"
            } else {
                "NO (latencies may be skewed)"
            }
        );
        println!("mlockall  {}", self.mlockall);
        println!(
            "pinning   {}",
            if self.pinning.is_empty() {
                "none".into()
            } else {
                self.pinning.join(", ")
            }
        );
    }
}

/// Lock current and future pages in memory so the measured path never page-faults.
fn lock_memory() -> String {
    // SAFETY: mlockall takes flags only and touches no Rust-visible memory.
    let rc = unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) };
    if rc == 0 {
        "locked (MCL_CURRENT | MCL_FUTURE)".into()
    } else {
        format!(
            "not locked: {} (raise RLIMIT_MEMLOCK or run with CAP_IPC_LOCK)",
            std::io::Error::last_os_error()
        )
    }
}
