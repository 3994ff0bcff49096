//! The experiment file ([`ExperimentSpec`]): the claim it tests, the table
//! shape and metric, the load ([`LoadSpec`]), the server configurations
//! ([`ConfigSpec`]) and their envelope ([`Limits`]), where the generator and
//! the private services run ([`Placement`], [`ServicesSpec`]), the claims
//! and what kind each is ([`ClaimSpec`]), trials, warm-up and data reset;
//! its validation, and the levels it runs. A model of the TOML file:
//! nothing here runs.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use super::calibrate::CalibrateSpec;
use super::compose::ComposeSpec;
use super::figures::DocumentFigure;
use super::limits::{cpu_list, Limits};
use super::run::ServerUsage;
use super::services::ServicesSpec;
use super::summary::{CellSummary, Estimate};
use crate::analysis::report::RunReport;
use crate::analysis::verdicts::{ClaimKind, Direction};
use crate::generator::scenarios::{AuthMode, ScenarioKind};
use crate::generator::schedule::Arrival;
use crate::tools::Tool;
use crate::units::parse_duration;

/// Table shape of the terminal and Markdown report, after the documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TableShape {
    /// Document 000's: Configuration | Avg | Median | Min | Max | 95th, and
    /// a Difference row per configuration against the baseline.
    Latency,
    /// Document 004's: Concurrent Connections | Requests/Second | Avg
    /// Response Time | p99 | Success Rate, one table per configuration.
    Sweep,
    /// Document 002's (Locust's): one row per endpoint.
    Endpoints,
}

/// The metric a verdict, claim or figure is about.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    #[default]
    Mean,
    Min,
    P50,
    P95,
    P99,
    Max,
    /// Throughput instead of latency.
    Rps,
    /// Share of requests that succeeded (%).
    Success,
    /// Bytes received per response: compressed when the server compressed.
    Bytes,
    /// Server CPU time per response, ms (all server processes' CPU during
    /// the run over its responses).
    CpuMs,
}

impl Metric {
    /// This metric of one run (`server`: its server's usage, for CPU per
    /// response); None when the run cannot give it (no response, or no
    /// server usage sampled).
    pub(super) fn of(&self, r: &RunReport, server: Option<&ServerUsage>) -> Option<f64> {
        let per_response = |total: f64| (r.responses > 0).then(|| total / r.responses as f64);
        Some(match self {
            Metric::Mean => r.latency_ms.mean,
            Metric::Min => r.latency_ms.min,
            Metric::P50 => r.latency_ms.p50,
            Metric::P95 => r.latency_ms.p95,
            Metric::P99 => r.latency_ms.p99,
            Metric::Max => r.latency_ms.max,
            Metric::Rps => r.rps,
            Metric::Success => r.success_rate,
            Metric::Bytes => return per_response(r.bytes_received as f64),
            Metric::CpuMs => return per_response(server?.cpu_cores * r.elapsed_s * 1000.0),
        })
    }

    /// The cell's estimate of this metric (None: the cell has none).
    pub(super) fn of_cell<'a>(&self, c: &'a CellSummary) -> Option<&'a Estimate> {
        Some(match self {
            Metric::Mean => &c.mean_ms,
            Metric::Min => &c.min_ms,
            Metric::P50 => &c.p50_ms,
            Metric::P95 => &c.p95_ms,
            Metric::P99 => &c.p99_ms,
            Metric::Max => &c.max_ms,
            Metric::Rps => &c.rps,
            Metric::Success => &c.success_rate,
            Metric::Bytes => return c.bytes_per_response.as_ref(),
            Metric::CpuMs => return c.server_cpu_ms_per_response.as_ref(),
        })
    }

    /// Measured for a whole run only: endpoint rows do not have it.
    pub(super) fn whole_runs_only(&self) -> bool {
        matches!(self, Metric::Bytes | Metric::CpuMs)
    }

    pub(super) fn name(&self) -> &'static str {
        match self {
            Metric::Mean => "mean latency",
            Metric::Min => "min latency",
            Metric::P50 => "median latency",
            Metric::P95 => "p95 latency",
            Metric::P99 => "p99 latency",
            Metric::Max => "max latency",
            Metric::Rps => "throughput",
            Metric::Success => "success rate",
            Metric::Bytes => "bytes per response",
            Metric::CpuMs => "server CPU per response (ms)",
        }
    }
}

/// The load part of an experiment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSpec {
    /// Scenarios run in every cell (each is its own cell).
    pub scenarios: Vec<ScenarioKind>,
    /// Closed model: the concurrency levels.
    #[serde(default)]
    pub concurrency: Vec<usize>,
    /// Open model: the arrival rates (req/s).
    #[serde(default)]
    pub rates: Vec<f64>,
    /// Open model: connections per run.
    #[serde(default)]
    pub connections: Option<usize>,
    /// Measured duration of each run (`10s`).
    #[serde(default)]
    pub duration: Option<String>,
    /// Or a total request count per run.
    #[serde(default)]
    pub requests: Option<u64>,
    /// Or requests per virtual user (the total is level × this), as the
    /// documents' scripts that send N requests per user did.
    #[serde(default)]
    pub requests_per_user: Option<u64>,
    #[serde(default)]
    pub think: Option<String>,
    #[serde(default)]
    pub spawn_rate: Option<f64>,
    #[serde(default)]
    pub ramp: Option<String>,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub arrival: Option<Arrival>,
    #[serde(default)]
    pub auth: Option<AuthMode>,
    #[serde(default)]
    pub static_path: Option<String>,
    /// Headers every request carries, as `-H` gives them
    /// (`"Accept-Encoding: gzip, deflate, br"`, what a browser sends).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<String>,
    /// With a ramp or spawn rate: how long after the last user has started
    /// the measured window opens (`5s`; default 0). Requests before it are
    /// reported as the ramp, not measured.
    #[serde(default)]
    pub settle: Option<String>,
}

/// One server configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigSpec {
    /// Short name (used in file names and `--config`).
    pub name: String,
    /// Label in tables, e.g. `Multi-Process (2)`.
    #[serde(default)]
    pub label: Option<String>,
    /// `config/NAME.env` profile passed as `--profile NAME`.
    #[serde(default)]
    pub profile: Option<String>,
    /// Environment variables on top of the profile.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Envelope of this configuration's server (overrides the
    /// experiment's `[limits]`).
    #[serde(default, alias = "cpu")]
    pub limits: Option<Limits>,
    /// Indexes this configuration runs without: dropped after the data
    /// reset, before its server starts, and recreated after its cells.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop_indexes: Vec<String>,
    /// The tool that sends this configuration's load (default: the
    /// runner's `--tool`): a column of the same server measured by another
    /// tool, side by side in one run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<Tool>,
    /// A compose deployment instead of the server binary
    /// (`[configs.compose]`, `super::compose`); `env` are then compose's
    /// variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compose: Option<ComposeSpec>,
}

impl ConfigSpec {
    pub(super) fn label(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.name)
    }
}

/// An experiment file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSpec {
    pub id: String,
    pub title: String,
    /// The seed document it reproduces.
    pub document: String,
    /// The claim it tests, in the document's words.
    pub claim: String,
    /// The argon2 parameters it uses, and why.
    pub argon2: String,
    pub table: TableShape,
    #[serde(default)]
    pub metric: Metric,
    /// Name of the configuration others are compared with.
    pub baseline: String,
    #[serde(default = "default_trials")]
    pub trials: usize,
    /// Warm-up before each configuration's first cell (`5s`).
    #[serde(default)]
    pub warmup: Option<String>,
    /// Pause between runs (`1s`).
    #[serde(default)]
    pub pause: Option<String>,
    /// Reset the data set (`SERVER seed`) before each server start.
    #[serde(default)]
    pub reset: bool,
    /// Extra arguments of that `seed`, e.g. a smaller data set for a quick
    /// run: `["--students-per-cohort", "5", "--attempts", "100"]` (default:
    /// the reference data set).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seed_args: Vec<String>,
    /// Envelope of every configuration's server: CPU set, quota, memory.
    #[serde(default, alias = "cpu")]
    pub limits: Limits,
    /// Where the load generator runs.
    #[serde(default)]
    pub placement: Placement,
    /// A private PostgreSQL and Redis the runner starts (default: the
    /// server's own `DATABASE_URL` and `REDIS_URL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<ServicesSpec>,
    /// The document's claims this experiment tests, each with its kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<ClaimSpec>,
    pub load: LoadSpec,
    pub configs: Vec<ConfigSpec>,
    #[serde(default)]
    pub notes: Option<String>,
    /// A statement whose plan (`EXPLAIN`) is recorded with every run, in
    /// the database state of the run's configuration (its indexes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explain: Option<String>,
    /// A server knob calibrated inside the run, before the trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibrate: Option<CalibrateSpec>,
    /// The document's own table, figure by figure, shown beside ours in
    /// the report (a figure leaving out its configuration, scenario or
    /// level means the baseline's, the first scenario, the first level).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub figures: Vec<DocumentFigure>,
    /// What differs from the document's setup and why: the report's
    /// section of that name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub differences: Option<String>,
}

impl ExperimentSpec {
    /// The same measurement as `other`: equal but for what only the report
    /// shows (title, claim text, notes, the claims tested, the document's
    /// figures, the differences), so that a run can resume after those are
    /// edited.
    pub fn measures_like(&self, other: &ExperimentSpec) -> bool {
        let measured = |s: &ExperimentSpec| ExperimentSpec {
            title: String::new(),
            claim: String::new(),
            notes: None,
            claims: Vec::new(),
            figures: Vec::new(),
            differences: None,
            calibrate: s.calibrate.clone().map(|mut c| {
                c.checks.clear();
                c
            }),
            ..s.clone()
        };
        measured(self) == measured(other)
    }
}

/// `[placement]`: CPUs of the load generator (quizload's threads and the
/// tools it runs).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<String>,
}

/// `[[claims]]`: one claim of the document, what kind it is, and which
/// comparison tests it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimSpec {
    /// The claim in the document's words.
    pub text: String,
    /// `difference` (with the document's figure `expected` or a
    /// `direction`) or `no-difference` (with an equivalence `margin`).
    pub kind: ClaimKindName,
    /// The document's relative figure: `0.24` (+24 %) or `[-0.2, -0.1]`.
    #[serde(default)]
    pub expected: Option<Expected>,
    #[serde(default)]
    pub direction: Option<Direction>,
    /// Equivalence margin of a `no-difference` claim: `0.10` (±10 %).
    #[serde(default)]
    pub margin: Option<f64>,
    /// The configuration the claim is about.
    pub config: String,
    /// Compared with (default: the experiment's baseline).
    #[serde(default)]
    pub against: Option<String>,
    /// Only this scenario / level (default: every cell).
    #[serde(default)]
    pub scenario: Option<String>,
    #[serde(default)]
    pub level: Option<f64>,
    /// The metric (default: the experiment's).
    #[serde(default)]
    pub metric: Option<Metric>,
    /// Only this endpoint's row, named as in the endpoints table
    /// (`GET /api/v1/quizzes`; default: the whole run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// The two kinds of claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClaimKindName {
    Difference,
    NoDifference,
}

/// A figure or a range of figures.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Expected {
    One(f64),
    Range([f64; 2]),
}

impl ClaimSpec {
    /// The claim as the inference tests it.
    pub fn kind(&self) -> anyhow::Result<ClaimKind> {
        let k = match self.kind {
            ClaimKindName::Difference => {
                if self.margin.is_some() {
                    bail!("`margin` belongs to no-difference claims");
                }
                ClaimKind::Difference {
                    expected: self.expected.map(|e| match e {
                        Expected::One(x) => [x, x],
                        Expected::Range(r) => r,
                    }),
                    direction: self.direction,
                }
            }
            ClaimKindName::NoDifference => {
                if self.expected.is_some() || self.direction.is_some() {
                    bail!("a no-difference claim takes a `margin`, not `expected` or `direction`");
                }
                ClaimKind::NoDifference {
                    margin: self
                        .margin
                        .context("a no-difference claim needs a `margin`")?,
                }
            }
        };
        k.validate()?;
        Ok(k)
    }
}

fn default_trials() -> usize {
    5
}

impl ExperimentSpec {
    /// Reads and validates an experiment file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let spec: Self = toml::from_str(&text)
            .with_context(|| format!("invalid experiment {}", path.display()))?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks the matrix is well formed.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.configs.is_empty() {
            bail!("experiment {} has no configs", self.id);
        }
        let mut names = std::collections::BTreeSet::new();
        for c in &self.configs {
            if !names.insert(&c.name) {
                bail!("config name {:?} appears twice", c.name);
            }
            if c.name.is_empty()
                || !c
                    .name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
            {
                bail!("config name {:?} must be letters, digits, - or _", c.name);
            }
        }
        for c in &self.configs {
            if let Some(l) = &c.limits {
                l.validate()?;
            }
            if let Some(d) = &c.compose {
                d.validate()
                    .with_context(|| format!("config {:?}", c.name))?;
                if c.limits.is_some() || !self.limits.is_empty() || c.profile.is_some() {
                    bail!("config {:?}: a compose deployment's envelope and profile are its variables (APP_CPUS, APP_CPUSET, PROFILE in env), not limits or profile", c.name);
                }
                if self.services.is_some() {
                    bail!("config {:?}: a compose deployment brings its own PostgreSQL and Redis; remove [services]", c.name);
                }
            }
        }
        self.limits.validate()?;
        if let Some(s) = &self.services {
            s.limits().validate()?;
        }
        if let Some(g) = &self.placement.generator {
            cpu_list(g)?;
        }
        for c in &self.claims {
            for name in std::iter::once(&c.config).chain(c.against.as_ref()) {
                if !names.contains(name) {
                    bail!("claim {:?}: {name:?} is not one of the configs", c.text);
                }
            }
            c.kind().with_context(|| format!("claim {:?}", c.text))?;
            if let (Some(m), Some(_)) = (c.metric.filter(Metric::whole_runs_only), &c.endpoint) {
                bail!("claim {:?}: an endpoint row has no {}", c.text, m.name());
            }
        }
        if let Some(c) = &self.calibrate {
            c.validate()?;
            if !names.contains(&c.config) {
                bail!("calibrate: {:?} is not one of the configs", c.config);
            }
            if let Some(d) = &c.duration {
                parse_duration(d)?;
            }
        }
        if !names.contains(&self.baseline) {
            bail!("baseline {:?} is not one of the configs", self.baseline);
        }
        let checks = self.calibrate.iter().flat_map(|c| &c.checks);
        for f in self.figures.iter().chain(checks) {
            if f.endpoint.is_some() && Metric::whole_runs_only(&f.metric) {
                bail!(
                    "figure {}: an endpoint row has no {}",
                    f.document,
                    f.metric.name()
                );
            }
            if let Some(name) = f.config.as_ref().filter(|n| !names.contains(n)) {
                bail!("figure {}: {name:?} is not one of the configs", f.document);
            }
            if let Some(sc) = f.scenario.filter(|s| !self.load.scenarios.contains(s)) {
                bail!(
                    "figure {}: scenario {} is not one of the load's",
                    f.document,
                    sc.name()
                );
            }
            if let Some(level) = f.level.filter(|l| !self.levels().contains(l)) {
                bail!(
                    "figure {}: level {level} is not one of the load's",
                    f.document
                );
            }
        }
        let l = &self.load;
        if l.scenarios.is_empty() {
            bail!("load.scenarios is empty");
        }
        match (l.concurrency.is_empty(), l.rates.is_empty()) {
            (true, true) => bail!("give load.concurrency or load.rates"),
            (false, false) => bail!("give load.concurrency or load.rates, not both"),
            _ => {}
        }
        let stops = [
            l.duration.is_some(),
            l.requests.is_some(),
            l.requests_per_user.is_some(),
        ];
        if stops.iter().filter(|x| **x).count() != 1 {
            bail!("give exactly one of load.duration, load.requests, load.requests_per_user");
        }
        for d in [
            &l.duration,
            &l.think,
            &l.ramp,
            &l.timeout,
            &l.settle,
            &self.warmup,
            &self.pause,
        ]
        .into_iter()
        .flatten()
        {
            if !d.contains("..") {
                parse_duration(d)?;
            }
        }
        for h in &l.headers {
            crate::load::parse_header(h).with_context(|| format!("load.headers: {h:?}"))?;
        }
        if self.trials == 0 {
            bail!("trials must be at least 1");
        }
        if !self.seed_args.is_empty() && !self.reset {
            bail!("seed_args apply to the reset: set reset = true");
        }
        Ok(())
    }

    pub(super) fn levels(&self) -> Vec<f64> {
        if self.load.rates.is_empty() {
            self.load.concurrency.iter().map(|c| *c as f64).collect()
        } else {
            self.load.rates.clone()
        }
    }

    pub(super) fn open(&self) -> bool {
        !self.load.rates.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::test_support::SPEC;

    #[test]
    fn parses_and_validates() {
        let s: ExperimentSpec = toml::from_str(SPEC).unwrap();
        s.validate().unwrap();
        assert_eq!(s.levels(), vec![2.0, 4.0]);
        assert_eq!(s.configs[0].env["PROCESSES"], "1");
        let mut bad = s.clone();
        bad.baseline = "three".into();
        assert!(bad.validate().is_err());
        let mut bad = s.clone();
        bad.load.rates = vec![10.0];
        assert!(bad.validate().is_err());
        let mut bad = s.clone();
        bad.load.duration = Some("5s".into());
        assert!(bad.validate().is_err(), "two stop conditions");
        let mut bad = s.clone();
        bad.seed_args = vec!["--attempts".into(), "10".into()];
        assert!(bad.validate().is_err(), "seed_args without reset");
        bad.reset = true;
        bad.validate().unwrap();
        assert!(toml::from_str::<ExperimentSpec>(
            &SPEC.replace("trials = 3", "trials = 3\nbogus = 1")
        )
        .is_err());
    }

    /// What only the report shows may change under a kept run (`--resume`
    /// re-renders it); what is measured may not.
    #[test]
    fn report_only_edits_measure_the_same() {
        let s: ExperimentSpec = toml::from_str(SPEC).unwrap();
        let claim = "[[claims]]\ntext = \"two is slower\"\nkind = \"difference\"\ndirection = \"lower\"\nconfig = \"two\"\n";
        let edited: ExperimentSpec = toml::from_str(&format!(
            "{}{claim}[[figures]]\nmetric = \"bytes\"\ndocument = 50000.0\n",
            SPEC.replace(
                "title = \"test\"",
                "title = \"another\"\ndifferences = \"none\""
            )
        ))
        .unwrap();
        edited.validate().unwrap();
        assert!(s.measures_like(&edited) && edited.measures_like(&s));
        let mut measured = s.clone();
        measured.trials += 1;
        assert!(!s.measures_like(&measured));
    }

    /// Bytes and CPU per response exist for whole runs, not endpoint rows.
    #[test]
    fn bytes_and_cpu_are_whole_run_metrics() {
        let with = |metric: &str, endpoint: &str| {
            toml::from_str::<ExperimentSpec>(&format!(
                "{SPEC}[[claims]]\ntext = \"smaller\"\nkind = \"difference\"\ndirection = \"lower\"\nconfig = \"two\"\nmetric = \"{metric}\"\n{endpoint}"
            ))
            .unwrap()
            .validate()
        };
        with("bytes", "").unwrap();
        with("cpu-ms", "").unwrap();
        with("mean", "endpoint = \"login\"\n").unwrap();
        let e = with("bytes", "endpoint = \"login\"\n").unwrap_err();
        assert!(e.to_string().contains("has no bytes per response"), "{e}");
        assert!(with("cpu-ms", "endpoint = \"login\"\n").is_err());
    }

    #[test]
    fn parses_a_compose_configuration() {
        let compose = r#"
[configs.compose]
files = ["docker-compose.yml", "deploy/compose.scale.yml"]
scale = { app = 2 }
free_ports = ["BALANCER_PORT"]
entry = "balancer:8080"
"#;
        let text = format!(
            "{}{compose}",
            SPEC.replace("profile = \"doc000-multi\"\n", "")
        );
        let s: ExperimentSpec = toml::from_str(&text).unwrap();
        s.validate().unwrap();
        let c = s.configs[1]
            .compose
            .as_ref()
            .expect("the last config's compose");
        assert_eq!(c.scale["app"], 2);
        assert_eq!(c.entry, "balancer:8080");
        assert!(s.configs[0].compose.is_none());
        // The envelope is compose's: a limit or profile on it is refused.
        let profiled: ExperimentSpec = toml::from_str(&format!("{SPEC}{compose}")).unwrap();
        assert!(profiled.validate().is_err());
        let mut bad = s.clone();
        bad.configs[1].limits = Some(Limits {
            cpus: Some("1".into()),
            ..Limits::default()
        });
        assert!(bad.validate().is_err());
        let bad: ExperimentSpec =
            toml::from_str(&text.replace("balancer:8080", "balancer")).unwrap();
        assert!(bad.validate().is_err());
    }
}
