//! A real PostgreSQL for tests and the benchmark: one throwaway cluster per process, started
//! lazily on a Unix socket in a private directory (no TCP port: nothing to race for), and a fresh
//! database per caller ([`database`]).
//!
//! The server comes from Debian's `postgresql` package (`/usr/lib/postgresql/<major>/bin`, or
//! the directory in `RELIVE_PG_BIN`). `initdb` refuses to run as root, so as root the cluster
//! belongs to the `postgres` user and its programs run through `runuser`. A watchdog process
//! stops the cluster (`pg_ctl -m immediate`, only that data directory) and removes its
//! directory once the test process has exited. Without the binaries the caller is skipped with
//! a printed reason, except with `CI=true`, where that fails ([`super::tool::skip`]).
//!
//! Only std, like [`super::tool`]: other crates' tests may include it with `#[path]` next to it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// A running cluster.
#[derive(Debug)]
pub struct Cluster {
    /// The PostgreSQL programs.
    bin: PathBuf,
    /// Private directory: `data/`, the socket, the log.
    dir: PathBuf,
    /// Run the programs as `postgres` (we are root).
    as_postgres: bool,
}

/// How the cluster is tuned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `fsync=off`: tests (a crash of the throwaway cluster loses nothing that matters).
    Tests,
    /// PostgreSQL's defaults (`fsync=on`, `synchronous_commit=on`): benchmarks, so an
    /// acknowledged write is on disk as with SQLite.
    Durable,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// The directory with `initdb`, `pg_ctl` and `psql`: `RELIVE_PG_BIN`, else the newest
/// `/usr/lib/postgresql/<major>/bin`.
#[must_use]
pub fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("RELIVE_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut majors: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let major = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .collect();
    majors.sort();
    majors.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

impl Cluster {
    fn program(&self, name: &str) -> Command {
        let path = self.bin.join(name);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn run(&self, mut cmd: Command, what: &str) -> Result<(), String> {
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{what}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{what} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Initialises and starts a cluster in a new private directory.
    ///
    /// # Errors
    ///
    /// What failed, with the programs' output.
    pub fn start(bin: PathBuf, durability: Durability) -> Result<Self, String> {
        // Short: the socket path must fit in ~107 bytes.
        let dir = std::env::temp_dir().join(format!(
            "rpg-{}-{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let as_postgres = is_root();
        let cluster = Self {
            bin,
            dir,
            as_postgres,
        };
        if as_postgres {
            let mut chown = Command::new("chown");
            chown.arg("postgres:").arg(&cluster.dir);
            cluster.run(chown, "chown postgres")?;
        }
        let data = cluster.dir.join("data");
        let mut initdb = cluster.program("initdb");
        initdb.arg("-D").arg(&data).args([
            "-A",
            "trust",
            "-U",
            "relive",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        if durability == Durability::Tests {
            initdb.arg("--no-sync");
        }
        cluster.run(initdb, "initdb")?;
        // Room for many stores at once (tests run in parallel; each store opens a pool).
        let mut options = format!(
            "-c listen_addresses= -k {} -c max_connections=400",
            cluster.dir.display()
        );
        if durability == Durability::Tests {
            options.push_str(" -c fsync=off -c full_page_writes=off");
        }
        let mut pg_ctl = cluster.program("pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(cluster.dir.join("pg.log"))
            .args(["-w", "-o", &options, "start"]);
        cluster.run(pg_ctl, "pg_ctl start")?;
        cluster.watch();
        Ok(cluster)
    }

    /// Starts the process that stops this cluster once the current process is gone.
    fn watch(&self) {
        let stop = format!(
            "{}{} -D {} -m immediate stop",
            if self.as_postgres {
                "runuser -u postgres -- "
            } else {
                ""
            },
            self.bin.join("pg_ctl").display(),
            self.dir.join("data").display()
        );
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            dir = self.dir.display()
        );
        // In a session of its own, so that stopping the test's process group (a timeout) does
        // not take the watchdog with it.
        let _ = Command::new("setsid")
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }

    /// CPU time (user + system, in clock ticks) the cluster's processes have used: the
    /// postmaster, its running children (the backends serving connections, the writers), and
    /// the children it has reaped. For benchmarks that charge the database's work per operation.
    #[must_use]
    pub fn cpu_ticks(&self) -> u64 {
        let Some(postmaster) = std::fs::read_to_string(self.dir.join("data/postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<u32>().ok()))
        else {
            return 0;
        };
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return 0;
        };
        let mut ticks = 0;
        for entry in procs.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // Fields after the command name (in parentheses, may hold spaces): state is field 3.
            let Some((_, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let f: Vec<u64> = rest
                .split_whitespace()
                .map(|x| x.parse().unwrap_or(0))
                .collect();
            // ppid = field 4, utime/stime = 14/15, cutime/cstime = 16/17 (`rest` starts at 3).
            let (Some(&ppid), Some(own)) = (f.get(1), f.get(11..13)) else {
                continue;
            };
            if pid == postmaster {
                ticks += own.iter().sum::<u64>() + f.get(13..15).map_or(0, |c| c.iter().sum());
            } else if u32::try_from(ppid).is_ok_and(|p| p == postmaster) {
                ticks += own.iter().sum::<u64>();
            }
        }
        ticks
    }

    /// The socket directory (the `host` of a connection).
    #[must_use]
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// Runs one SQL statement as the superuser `relive` on database `db`.
    ///
    /// # Errors
    ///
    /// `psql`'s output.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(self.bin.join("psql"))
            .arg("-h")
            .arg(&self.dir)
            .args(["-U", "relive", "-d", db, "-XAtqc", sql])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "psql failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Creates an empty database and returns its URL.
    ///
    /// # Errors
    ///
    /// `psql`'s output.
    pub fn create_database(&self) -> Result<String, String> {
        let name = format!(
            "t{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed)
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"))?;
        Ok(self.url(&name))
    }

    /// The URL of database `name`.
    #[must_use]
    pub fn url(&self, name: &str) -> String {
        format!("postgres://relive@/{name}?host={}", self.dir.display())
    }
}

/// The process's cluster (started on first use, `fsync=off`), or why there is none.
///
/// # Errors
///
/// Not installed, or it failed to start.
pub fn cluster() -> Result<&'static Cluster, String> {
    CLUSTER
        .get_or_init(|| {
            let bin = bin_dir().ok_or_else(|| {
                "PostgreSQL is not installed (Debian package postgresql)".to_owned()
            })?;
            Cluster::start(bin, Durability::Tests)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// A fresh, empty database on the process's cluster: its URL, or `None` after
/// [`super::tool::skip`] (PostgreSQL missing; fails with `CI=true`).
///
/// # Panics
///
/// If PostgreSQL is installed but does not start, or with `CI=true` when it is missing.
#[track_caller]
#[must_use]
pub fn database() -> Option<String> {
    match cluster() {
        Ok(cluster) => Some(cluster.create_database().expect("CREATE DATABASE")),
        Err(why) if bin_dir().is_none() => {
            super::tool::skip(&why);
            None
        }
        Err(why) => panic!("PostgreSQL did not start: {why}"),
    }
}
