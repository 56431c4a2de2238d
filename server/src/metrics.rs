//! Operational metrics in the Prometheus text format: `GET /metrics` on a listener of its own
//! (`metrics` in `relive.toml`, `127.0.0.1:9863` by default, so only this host can scrape it).
//!
//! The series (prometheus-client renders them; names follow Prometheus conventions: a `relive_`
//! prefix, base units, `_total` on counters):
//!
//! | series | type | labels |
//! |---|---|---|
//! | `relive_users_online` | gauge | `dialect` (`MSNP2` … `MSNP9`) |
//! | `relive_connections_open` | gauge | |
//! | `relive_logins_total` | counter | `method` (`md5`, `ctp`, `twn`, `passport`), `result` (`ok`, `failed`, `refused`, `error`) |
//! | `relive_switchboard_sessions` | gauge | |
//! | `relive_switchboard_messages_total` | counter | |
//! | `relive_outbox_overflows_total` | counter | |
//! | `relive_history_recorded_total` | counter | |
//! | `relive_history_dropped_total` | counter | |
//! | `relive_relay_allocations_open` | gauge | |
//! | `relive_relay_allocations_total` | counter | |
//! | `relive_relay_transfers_total` | counter | `result` (`ok`, `failed`, `expired`) |
//! | `relive_relay_bytes_total` | counter | |
//! | `relive_store_operation_duration_seconds` | histogram | |
//! | `relive_store_retries_total` | counter | |
//! | `process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds`, `process_cpu_seconds_total`, `process_start_time_seconds` | (Linux) | |
//!
//! Counters live where the events happen and cost one relaxed atomic add there: logins in the
//! Passport service ([`Logins`]), relayed `MSG`s in [`crate::switchboard::Switchboards`],
//! overflows in [`crate::hub::OutboxFactory`], store latency in [`crate::store::Store`], relay
//! totals in the relay's port pool. Gauges are read when scraped ([`Live`]). The relay series
//! count the embedded relay only: a standalone relay (`[relay] remote`) logs its own transfers.

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use relive_msnp::version::ProtocolVersion;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::hub::{Hub, OutboxFactory};
use crate::relay::DataPlane;
use crate::store::Store;
use crate::switchboard::Switchboards;

/// Default metrics listener: this host only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9863";

/// The `Content-Type` of the exposition (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// How a login was attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginMethod {
    /// MSNP `USR MD5` (MSNP2–7).
    Md5,
    /// MSNP `USR CTP` (cleartext, MSNP2).
    Ctp,
    /// MSNP `USR TWN` with a Passport ticket (MSNP8+).
    Twn,
    /// Passport 1.4 `login2.srf` over HTTP(S).
    Passport,
}

impl LoginMethod {
    const ALL: [Self; 4] = [Self::Md5, Self::Ctp, Self::Twn, Self::Passport];

    const fn label(self) -> &'static str {
        match self {
            Self::Md5 => "md5",
            Self::Ctp => "ctp",
            Self::Twn => "twn",
            Self::Passport => "passport",
        }
    }
}

/// How a login ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginResult {
    /// Signed in (or, for Passport, a ticket issued).
    Ok,
    /// Wrong or unknown credentials.
    Failed,
    /// Refused unchecked by the login rate limiter.
    Refused,
    /// The check itself failed (the database).
    Error,
}

impl LoginResult {
    const ALL: [Self; 4] = [Self::Ok, Self::Failed, Self::Refused, Self::Error];

    const fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::Refused => "refused",
            Self::Error => "error",
        }
    }
}

/// The labels of one login counter.
type LoginLabels = [(&'static str, &'static str); 2];

/// Login attempts by method and result. Cheap to clone (clones count into the same series).
#[derive(Debug, Clone, Default)]
pub struct Logins {
    family: Family<LoginLabels, Counter>,
}

impl Logins {
    /// Every method × result at zero, so each series exists from the first scrape.
    #[must_use]
    pub fn new() -> Self {
        let logins = Self::default();
        for method in LoginMethod::ALL {
            for result in LoginResult::ALL {
                let _ = logins.family.get_or_create(&Self::labels(method, result));
            }
        }
        logins
    }

    const fn labels(method: LoginMethod, result: LoginResult) -> LoginLabels {
        [("method", method.label()), ("result", result.label())]
    }

    /// Counts one attempt.
    pub fn record(&self, method: LoginMethod, result: LoginResult) {
        self.family
            .get_or_create(&Self::labels(method, result))
            .inc();
    }

    /// The attempts counted so far for `method` and `result`.
    #[must_use]
    pub fn count(&self, method: LoginMethod, result: LoginResult) -> u64 {
        self.family
            .get_or_create(&Self::labels(method, result))
            .get()
    }
}

/// The gauges and totals read at each scrape from the server's shared state.
struct Live {
    hub: Arc<Hub>,
    switchboards: Arc<Switchboards>,
    connections: Arc<watch::Sender<usize>>,
}

impl fmt::Debug for Live {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Live").finish_non_exhaustive()
    }
}

/// A gauge or counter without labels.
fn single(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    metric: &impl prometheus_client::encoding::EncodeMetric,
) -> fmt::Result {
    metric.encode(encoder.encode_descriptor(name, help, unit, metric.metric_type())?)
}

fn gauge(value: usize) -> ConstGauge<i64> {
    ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX))
}

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let by_dialect = self.hub.sessions_by_dialect();
        let implemented = ProtocolVersion::IMPLEMENTED;
        let mut users = encoder.encode_descriptor(
            "relive_users_online",
            "Logged-in notification sessions, by MSNP dialect.",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for n in implemented.start().number()..=implemented.end().number() {
            let Some(version) = ProtocolVersion::new(n) else {
                continue;
            };
            let dialect = version.to_string();
            let count = by_dialect.get(&Some(version)).copied().unwrap_or(0);
            gauge(count).encode(users.encode_family(&[("dialect", dialect.as_str())])?)?;
        }
        // A session between its login and its dialect being recorded (a moment).
        if let Some(&count) = by_dialect.get(&None) {
            gauge(count).encode(users.encode_family(&[("dialect", "unknown")])?)?;
        }
        single(
            &mut encoder,
            "relive_connections_open",
            "Open client connections over all listeners (NS, SB, HTTP, HTTPS, legacy TLS).",
            None,
            &gauge(*self.connections.borrow()),
        )?;
        single(
            &mut encoder,
            "relive_switchboard_sessions",
            "Live switchboard sessions (conversations).",
            None,
            &gauge(self.switchboards.room_count()),
        )?;
        let pool = self
            .switchboards
            .relay_state()
            .and_then(|relay| match &relay.data_plane {
                DataPlane::Embedded { pool, .. } => Some(pool.clone()),
                DataPlane::Remote(_) => None,
            });
        let Some(pool) = pool else {
            return Ok(());
        };
        let totals = pool.totals();
        single(
            &mut encoder,
            "relive_relay_allocations_open",
            "Relay port allocations held now (waiting for a peer or carrying a transfer).",
            None,
            &gauge(pool.active()),
        )?;
        single(
            &mut encoder,
            "relive_relay_allocations",
            "Relay port allocations made.",
            None,
            &ConstCounter::new(totals.allocated()),
        )?;
        let mut transfers = encoder.encode_descriptor(
            "relive_relay_transfers",
            "Relayed connections by how they ended: ok, failed (dial, I/O or idle timeout), \
             expired (nobody connected).",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (result, n) in [
            ("ok", totals.relayed()),
            ("failed", totals.failed()),
            ("expired", totals.expired()),
        ] {
            ConstCounter::new(n).encode(transfers.encode_family(&[("result", result)])?)?;
        }
        single(
            &mut encoder,
            "relive_relay",
            "Bytes carried by relayed connections, both directions, counted as they move.",
            Some(&Unit::Bytes),
            &ConstCounter::new(totals.bytes()),
        )?;
        Ok(())
    }
}

/// This process's resource use, as the Prometheus client libraries name it (Linux only).
#[derive(Debug)]
struct Process;

#[cfg(target_os = "linux")]
impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let Some(stat) = process::read() else {
            return Ok(());
        };
        single(
            &mut encoder,
            "process_resident_memory",
            "Resident memory size.",
            Some(&Unit::Bytes),
            &ConstGauge::new(stat.resident_bytes),
        )?;
        single(
            &mut encoder,
            "process_virtual_memory",
            "Virtual memory size.",
            Some(&Unit::Bytes),
            &ConstGauge::new(stat.virtual_bytes),
        )?;
        single(
            &mut encoder,
            "process_cpu",
            "User and system CPU time spent.",
            Some(&Unit::Seconds),
            &ConstCounter::new(stat.cpu_seconds),
        )?;
        single(
            &mut encoder,
            "process_start_time",
            "Start time of the process since the Unix epoch.",
            Some(&Unit::Seconds),
            &ConstGauge::new(stat.start_time_seconds),
        )?;
        if let Some(open) = stat.open_fds {
            single(
                &mut encoder,
                "process_open_fds",
                "Open file descriptors (each client connection is one).",
                None,
                &ConstGauge::new(open),
            )?;
        }
        if let Some(max) = stat.max_fds {
            single(
                &mut encoder,
                "process_max_fds",
                "The open-file limit (soft).",
                None,
                &ConstGauge::new(max),
            )?;
        }
        Ok(())
    }
}

#[cfg(not(target_os = "linux"))]
impl Collector for Process {
    fn encode(&self, _encoder: DescriptorEncoder<'_>) -> fmt::Result {
        Ok(())
    }
}

#[cfg(target_os = "linux")]
mod process {
    //! `/proc/self` read the way the Prometheus client libraries' process collectors read it.

    /// One reading.
    pub(super) struct Stat {
        pub(super) resident_bytes: i64,
        pub(super) virtual_bytes: i64,
        pub(super) cpu_seconds: f64,
        pub(super) start_time_seconds: f64,
        pub(super) open_fds: Option<i64>,
        pub(super) max_fds: Option<i64>,
    }

    /// Reads `/proc/self/stat` (and the boot time from `/proc/stat`); `None` if unreadable.
    pub(super) fn read() -> Option<Stat> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name (field 2) may hold spaces and parentheses: fields resume after
        // the last ')'; the first one there is field 3 (state).
        let fields: Vec<&str> = stat
            .get(stat.rfind(')')? + 1..)?
            .split_whitespace()
            .collect();
        let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse().ok() };
        let ticks = f64::from(u32::try_from(rustix::param::clock_ticks_per_second()).ok()?);
        let page = f64::from(u32::try_from(rustix::param::page_size()).ok()?);
        let boot: f64 = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()?;
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .and_then(|d| i64::try_from(d.count()).ok());
        let max_fds = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .and_then(|n| i64::try_from(n).ok());
        #[allow(clippy::cast_possible_truncation, reason = "byte counts fit an i64")]
        Some(Stat {
            resident_bytes: (field(24)? * page) as i64,
            virtual_bytes: field(23)? as i64,
            cpu_seconds: (field(14)? + field(15)?) / ticks,
            start_time_seconds: boot + field(22)? / ticks,
            open_fds,
            max_fds,
        })
    }
}

/// The registry behind `/metrics`.
pub struct Metrics {
    registry: Registry,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// What [`Metrics::new`] reads from: the server's shared state.
#[derive(Debug)]
pub struct Sources<'a> {
    /// Login counters (the Passport service's).
    pub logins: &'a Logins,
    /// The store (operation latency).
    pub store: &'a Store,
    /// Online users.
    pub hub: &'a Arc<Hub>,
    /// Outboxes (overflows).
    pub outboxes: &'a OutboxFactory,
    /// Switchboard sessions, messages and the relay.
    pub switchboards: &'a Arc<Switchboards>,
    /// The open-connection count.
    pub connections: &'a Arc<watch::Sender<usize>>,
}

impl Metrics {
    /// Registers every series over `sources`. (prometheus-client ends the help texts of
    /// registered metrics with a period; the collectors' texts carry their own.)
    #[must_use]
    pub fn new(sources: &Sources<'_>) -> Self {
        let mut registry = Registry::default();
        registry.register(
            "relive_logins",
            "Login attempts by method (md5, ctp, twn, passport) and result (ok, failed, \
             refused by the rate limiter, error)",
            sources.logins.family.clone(),
        );
        registry.register(
            "relive_switchboard_messages",
            "MSG commands relayed in switchboard sessions (one per sender's MSG)",
            sources.switchboards.messages().clone(),
        );
        registry.register(
            "relive_history_recorded",
            "History message copies written (one per member who keeps it)",
            sources.switchboards.history().written().clone(),
        );
        registry.register(
            "relive_history_dropped",
            "Text messages not recorded in the history because its writer's queue was full",
            sources.switchboards.history().dropped().clone(),
        );
        registry.register(
            "relive_outbox_overflows",
            "Connections closed because they read too slowly (their outbox overflowed)",
            sources.outboxes.overflows().clone(),
        );
        registry.register_with_unit(
            "relive_store_operation_duration",
            "Database operations: time from being queued to their result",
            Unit::Seconds,
            sources.store.latency().clone(),
        );
        registry.register(
            "relive_store_retries",
            "PostgreSQL store operations run again after a conflict with another (0 on SQLite)",
            sources.store.retries().clone(),
        );
        registry.register_collector(Box::new(Live {
            hub: Arc::clone(sources.hub),
            switchboards: Arc::clone(sources.switchboards),
            connections: Arc::clone(sources.connections),
        }));
        registry.register_collector(Box::new(Process));
        Self { registry }
    }

    /// The exposition text (Prometheus text format 0.0.4).
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail; an encoder error would be a bug in a collector.
        if let Err(error) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::error!(%error, "cannot encode the metrics");
        }
        out
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` is cancelled; every other path is 404.
///
/// # Errors
///
/// Accepting on the listener failed.
pub async fn serve(
    metrics: Arc<Metrics>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    use axum::http::header::CONTENT_TYPE as CONTENT_TYPE_HEADER;
    let router = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = Arc::clone(&metrics);
            async move { ([(CONTENT_TYPE_HEADER, CONTENT_TYPE)], metrics.render()) }
        }),
    );
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
