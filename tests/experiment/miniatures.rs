//! Each document's experiment file in miniature: the real file from
//! `loadtests/experiments/`, shrunk to one short trial of a few cells and a
//! small data set, run end to end by the runner against the `quizbench`
//! binary this package just built, with the file's own envelope,
//! placement and private PostgreSQL and Redis. The assertions are about
//! what each document's reproduction depends on (compressed bodies, the
//! server's own CPU, ...), never about timings.

use std::path::PathBuf;

use loadtests::experiment::figures::DocumentFigure;
use loadtests::experiment::{
    load_runs, run_experiment, ExperimentSpec, ExperimentSummary, RunRecord,
};

use super::TempDir;

/// A miniature of one experiment file: which configurations, scenarios and
/// levels to keep, and the measured duration of each cell.
pub struct Miniature<'a> {
    pub file: &'a str,
    pub configs: &'a [&'a str],
    pub scenarios: &'a [&'a str],
    pub levels: &'a [usize],
    pub duration: &'a str,
    /// `seed` arguments of the small data set.
    pub seed_args: &'a [&'a str],
    /// Environment every configuration gets on top of its own.
    pub env: &'a [(&'a str, &'a str)],
    /// The calibration's target and first value, scaled to the miniature.
    pub calibrate: Option<(f64, f64)>,
}

/// One second per cell on one reference cohort, the configurations' own
/// environment, no calibration: what a miniature changes it names.
impl Default for Miniature<'static> {
    fn default() -> Self {
        Miniature {
            file: "",
            configs: &[],
            scenarios: &[],
            levels: &[],
            duration: "1s",
            seed_args: ONE_REFERENCE_COHORT,
            env: &[],
            calibrate: None,
        }
    }
}

/// The calibration step ran before the trials, on `config`, for `var`: its
/// steps end at the value every trial used, `calibration.json` is written,
/// and the report gives the value and the out-of-sample checks. Returns
/// the calibration for the document's own assertions.
pub fn assert_calibrated<'a>(
    run: &'a MiniRun,
    var: &str,
    config: &str,
) -> &'a loadtests::experiment::calibrate::Calibration {
    let cal = run
        .summary
        .calibration
        .as_ref()
        .expect("calibration in the summary");
    assert_eq!((cal.var.as_str(), cal.config.as_str()), (var, config));
    assert!(!cal.steps.is_empty() && cal.value >= 1.0, "{cal:?}");
    assert_eq!(cal.steps.last().unwrap().value, cal.value);
    assert!(run.out.join("calibration.json").is_file());
    let md = run.report();
    for expected in [
        "## Calibration".to_string(),
        format!("`{var}` calibrated on {config}"),
        format!("{var} = **{}**", cal.value),
        "## Out-of-sample checks".to_string(),
    ] {
        assert!(md.contains(&expected), "{expected}: {md}");
    }
    cal
}

/// The file's results, kept alive (and its folder) as long as this is.
pub struct MiniRun {
    pub summary: ExperimentSummary,
    pub records: Vec<RunRecord>,
    pub out: PathBuf,
    _dir: TempDir,
}

impl MiniRun {
    pub fn cell(
        &self,
        config: &str,
        scenario: &str,
    ) -> &loadtests::experiment::summary::CellSummary {
        self.summary
            .cells
            .iter()
            .find(|c| c.config == config && c.scenario == scenario)
            .unwrap_or_else(|| panic!("no cell {config}/{scenario}"))
    }

    pub fn report(&self) -> String {
        std::fs::read_to_string(self.out.join("report.md")).expect("report.md")
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

impl Miniature<'_> {
    /// The experiment file as shrunk.
    pub fn spec(&self) -> ExperimentSpec {
        let path = repo().join("loadtests/experiments").join(self.file);
        let mut spec = ExperimentSpec::load(&path).expect("experiment file");
        assert!(
            spec.trials >= 5,
            "{}: the full-size run asks for >= 5 trials",
            self.file
        );
        spec.trials = 1;
        spec.warmup = None;
        spec.pause = Some("100ms".into());
        spec.configs
            .retain(|c| self.configs.contains(&c.name.as_str()));
        assert_eq!(
            spec.configs.len(),
            self.configs.len(),
            "configs of {}",
            self.file
        );
        let keep = |n: &str| self.configs.contains(&n);
        if !keep(&spec.baseline) {
            spec.baseline = self.configs[0].to_string();
        }
        let baseline = spec.baseline.clone();
        spec.claims
            .retain(|c| keep(&c.config) && keep(c.against.as_deref().unwrap_or(&baseline)));
        spec.load
            .scenarios
            .retain(|s| self.scenarios.contains(&s.name().as_str()));
        assert_eq!(spec.load.scenarios.len(), self.scenarios.len(), "scenarios");
        spec.load.concurrency = self.levels.to_vec();
        // Files that stop on a request count keep it (001's burst).
        if spec.load.duration.is_some() {
            spec.load.duration = Some(self.duration.into());
        }
        spec.load.spawn_rate = None;
        spec.load.settle = None;
        spec.reset = true;
        spec.seed_args = self.seed_args.iter().map(|s| s.to_string()).collect();
        for c in &mut spec.configs {
            for (k, v) in self.env {
                c.env.insert(k.to_string(), v.to_string());
            }
        }
        match (&mut spec.calibrate, self.calibrate) {
            (Some(c), Some((target, start))) => {
                c.target = target;
                c.start = start;
                c.tolerance = 0.3;
                // A file whose steps run by duration runs them as short as
                // its cells.
                if c.duration.is_some() {
                    c.duration = Some(self.duration.into());
                }
            }
            (None, None) => {}
            _ => panic!(
                "{}: calibrate given for a file without one, or the other way",
                self.file
            ),
        }
        // The document's figures follow the shrunk matrix: a dropped
        // configuration's or scenario's go, a dropped level's move to the
        // first level kept.
        let levels: Vec<f64> = self.levels.iter().map(|l| *l as f64).collect();
        let scenarios = spec.load.scenarios.clone();
        let shrink = |figures: &mut Vec<DocumentFigure>| {
            figures.retain(|f| {
                f.config.as_deref().is_none_or(keep)
                    && f.scenario.is_none_or(|s| scenarios.contains(&s))
            });
            for f in figures {
                if f.level.is_some_and(|l| !levels.contains(&l)) {
                    f.level = Some(levels[0]);
                }
            }
        };
        shrink(&mut spec.figures);
        if let Some(c) = &mut spec.calibrate {
            shrink(&mut c.checks);
        }
        spec.validate()
            .expect("the miniature is a valid experiment");
        spec
    }

    /// Runs the miniature and reads back its runs.
    pub fn run(&self) -> MiniRun {
        run_spec(self.spec())
    }
}

/// Runs a miniature's spec (as [`Miniature::spec`] gave it, maybe changed
/// further) and reads back its runs.
pub fn run_spec(spec: ExperimentSpec) -> MiniRun {
    spec.validate()
        .expect("the miniature is a valid experiment");
    let _serial = super::one_at_a_time();
    let server = std::fs::canonicalize(super::SERVER_BIN).expect("server binary");
    let dir = TempDir::new();
    let out = dir.0.join("results");
    let opts = super::quiet_run(server, out.clone(), 11);
    let started = std::time::Instant::now();
    let (summary, _) = run_experiment(&spec, &opts).expect("the miniature runs");
    eprintln!(
        "miniature of {} ran in {:.1} s",
        spec.id,
        started.elapsed().as_secs_f64()
    );
    let records = load_runs(&out).expect("runs/");
    let report = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    if !spec.figures.is_empty() {
        assert!(!summary.figures.is_empty(), "{:?}", summary.figures);
        assert!(report.contains("## The document's figures beside ours"));
    }
    if spec.differences.is_some() {
        assert!(report.contains("## What differs from the document, and why"));
    }
    MiniRun {
        summary,
        records,
        out,
        _dir: dir,
    }
}

/// Every run's server ran on CPU 0 alone, the generator and the private
/// services on CPU 1: no component shared the server's CPU.
pub fn assert_server_on_its_own_cpu(run: &MiniRun) {
    assert!(!run.records.is_empty());
    for r in &run.records {
        let p = r.placement.as_ref().expect("placement recorded");
        let cpus = &p.affinity.cpus;
        assert_eq!(
            cpus.get("server").map(String::as_str),
            Some("0"),
            "{cpus:?}"
        );
        for other in ["generator", "postgres", "redis"] {
            assert_eq!(
                cpus.get(other).map(String::as_str),
                Some("1"),
                "{other}: {cpus:?}"
            );
        }
        assert!(p.overlaps.is_empty(), "{:?}", p.overlaps);
    }
}

/// 1 organization, 1 cohort of 100 students (the reference cohort size),
/// 50 quizzes and 10 attempts a student, as in the reference data set: the
/// cohort dashboard has the reference page's rows and columns.
pub const ONE_REFERENCE_COHORT: &[&str] = &[
    "--organizations",
    "1",
    "--cohorts-per-org",
    "1",
    "--students-per-cohort",
    "100",
    "--quizzes",
    "50",
    "--attempts",
    "1000",
];

/// Document 003: the browser's `Accept-Encoding` makes the gzip and
/// brotli configurations send compressed bodies, the dashboard page is
/// 40-80 KB uncompressed, the server has CPU 0 to itself, and the
/// document's page sizes and reductions are judged on bytes per response.
#[test]
fn doc003_compressed_rows_and_the_dashboard_page() {
    let run = Miniature {
        file: "003-gunicorn-threads-compression.toml",
        configs: &["waitress", "nocomp", "gzip1", "br6"],
        scenarios: &["cohort", "static"],
        // The level of the file's claims on bytes per response.
        levels: &[5],
        ..Miniature::default()
    }
    .run();
    for r in &run.records {
        assert_eq!(
            r.report.errors.total, 0,
            "{} {}: {:?}",
            r.config, r.scenario, r.report.errors
        );
        assert_eq!(r.report.success_rate, 100.0, "{} {}", r.config, r.scenario);
    }
    let bytes = |config: &str, scenario: &str| {
        run.cell(config, scenario)
            .bytes_per_response
            .as_ref()
            .expect("bytes per response")
            .mean
    };
    for c in &run.summary.cells {
        eprintln!(
            "{} {}: {:.0} bytes/response",
            c.config,
            c.scenario,
            bytes(&c.config, &c.scenario)
        );
    }
    let page = bytes("nocomp", "cohort");
    assert!(
        (40_000.0..=80_000.0).contains(&page),
        "the dashboard page is {page:.0} bytes uncompressed"
    );
    for (config, scenario) in [
        ("waitress", "cohort"),
        ("gzip1", "cohort"),
        ("br6", "cohort"),
        ("gzip1", "static"),
        ("br6", "static"),
    ] {
        let b = bytes(config, scenario);
        let plain = bytes("nocomp", scenario);
        assert!(
            b < plain * 0.6,
            "{config}/{scenario}: {b:.0} bytes vs {plain:.0} uncompressed"
        );
    }
    assert!(
        bytes("br6", "cohort") < bytes("gzip1", "cohort"),
        "brotli 6 compresses better than gzip 1"
    );
    for c in &run.summary.cells {
        let cpu = c
            .server_cpu_ms_per_response
            .as_ref()
            .expect("CPU per response");
        assert!(cpu.mean >= 0.0 && cpu.mean.is_finite());
    }
    assert_server_on_its_own_cpu(&run);
    let md = run.report();
    assert!(md.contains("Bytes per response") && md.contains("Server CPU per response (ms)"));
    // The document's page sizes and reductions, on bytes per response: the
    // figure is the cell's, the claim gzip 1 against the uncompressed page.
    let figure = |config: &str, metric: &str| {
        run.summary
            .figures
            .iter()
            .find(|f| f.config == config && f.scenario == "cohort" && f.metric == metric)
            .unwrap_or_else(|| panic!("{config} {metric}: {:?}", run.summary.figures))
    };
    assert_eq!(figure("nocomp", "bytes per response").ours, page);
    assert_eq!(figure("gzip1", "bytes per response").document, 27_000.0);
    assert!(figure("gzip1", "server CPU per response (ms)").ours > 0.0);
    let reduction = run
        .summary
        .claims
        .iter()
        .find(|c| c.config == "gzip1" && c.against == "nocomp")
        .expect("gzip 1's reduction tested");
    assert_eq!(reduction.metric, "bytes per response");
    let expected = bytes("gzip1", "cohort") / page - 1.0;
    assert!(
        (reduction.test.relative - expected).abs() < 1e-9,
        "{} vs {expected}",
        reduction.test.relative
    );
    assert!(md.contains("gzip level 1 cuts a 50 KB HTML page"), "{md}");
}

/// Document 004's select-options at 5 connections.
fn doc004() -> Miniature<'static> {
    Miniature {
        file: "004-go-fiber-prefork.toml",
        scenarios: &["select-options"],
        levels: &[5],
        ..Miniature::default()
    }
}

/// Document 004: the private PostgreSQL runs with the document's
/// `max_connections = 300`, and every run records the plan of
/// select-options in its configuration's state: with the index an index
/// scan of `users_select_options_idx`, without it a scan of `users`.
#[test]
fn doc004_max_connections_and_each_index_cells_plan() {
    let run = Miniature {
        configs: &["single", "noindex"],
        // 2,000 students: enough rows for the planner to prefer the index.
        seed_args: &[
            "--organizations",
            "2",
            "--cohorts-per-org",
            "10",
            "--students-per-cohort",
            "100",
            "--quizzes",
            "5",
            "--attempts",
            "100",
        ],
        ..doc004()
    }
    .run();
    let method = run.summary.method.as_ref().expect("method");
    assert_eq!(method.max_connections, Some(300));
    for r in &run.records {
        assert_eq!(
            r.report.errors.total, 0,
            "{}: {:?}",
            r.config, r.report.errors
        );
        let plan = r.plan.as_deref().expect("every run has its plan");
        eprintln!("{}:\n{plan}", r.config);
        match r.config.as_str() {
            "single" => assert!(plan.contains("users_select_options_idx"), "{plan}"),
            _ => assert!(
                !plan.contains("users_select_options_idx") && plan.contains("Seq Scan on users"),
                "{plan}"
            ),
        }
    }
    let md = run.report();
    assert!(md.contains("## Plans (EXPLAIN)"), "{md}");
    assert!(md.contains("PostgreSQL max_connections: 300"), "{md}");
}

/// Document 004's "startup issues" as a result row: 16 prefork workers
/// with pools of 80 against the private PostgreSQL's 300 connections do not
/// fit, and under `CONNECTION_BUDGET=strict` the server refuses to start.
/// The runner lists the configuration under "Configurations that did not
/// start", with the server's own reason, and goes on with the others.
#[test]
fn doc004_prefork16_over_the_budget_is_a_start_failure_row() {
    let run = Miniature {
        configs: &["single", "prefork16"],
        env: &[("CONNECTION_BUDGET", "strict")],
        ..doc004()
    }
    .run();
    let [f] = &run.summary.start_failures[..] else {
        panic!("one start failure: {:?}", run.summary.start_failures);
    };
    assert_eq!(f.config, "prefork16");
    assert!(f.error.contains("exited during start-up"), "{}", f.error);
    assert!(
        f.log_tail.contains("connection budget exceeded")
            && f.log_tail.contains("max_connections 300"),
        "{}",
        f.log_tail
    );
    assert!(run.records.iter().all(|r| r.config == "single"));
    assert!(!run.records.is_empty());
    let md = run.report();
    assert!(md.contains("## Configurations that did not start"), "{md}");
    assert!(md.contains("prefork16"), "{md}");
}

/// Document 001: the grading cost is calibrated before the trials (here
/// towards a 1.5 s burst instead of 21.75 s, with a 8 MB model per worker
/// instead of 440 MB), every configuration runs with the value found, and
/// the report gives the calibration's steps and the out-of-sample shape
/// errors (min, mean, p95 against the document's).
#[test]
fn doc001_calibration_runs_and_is_reported() {
    let run = Miniature {
        file: "001-gunicorn-ml-30-users.toml",
        configs: &["workers-2", "workers-8"],
        scenarios: &["grade"],
        levels: &[30],
        env: &[
            ("GRADE_MODEL_MB", "8"),
            ("ARGON2_MEMORY_KIB", "64"),
            ("ARGON2_ITERATIONS", "1"),
        ],
        calibrate: Some((1500.0, 20.0)),
        ..Miniature::default()
    }
    .run();
    assert_calibrated(&run, "GRADE_COST", "workers-8");
    // Every configuration ran with the value found: 30 requests each, all
    // answered.
    for r in &run.records {
        assert_eq!(r.report.requests, 30, "{}", r.config);
    }
    let checks = &run.summary.checks;
    assert_eq!(checks.len(), 3, "{checks:?}");
    assert!(checks
        .iter()
        .all(|k| k.config == "workers-8" && k.error.is_finite()));
}

/// Document 002: Django's CPU per request (`APP_CPU_COST_US`) is
/// calibrated on the January setup (3 workers, no cache) before the
/// trials — here towards 20 req/s from 10 users thinking 0.1-0.3 s instead
/// of 37.5 req/s from 300 users thinking 1-3 s —, every trial's server has
/// CPU 0 to itself, and the report gives the calibration's steps and the
/// errors of the out-of-sample checks (February's prediction).
#[test]
fn doc002_calibration_runs_and_the_server_has_its_own_cpu() {
    const USERS: usize = 10;
    let mut spec = Miniature {
        file: "002-django-uwsgi-quiz-locust.toml",
        configs: &["w3-nocache", "w6-cache"],
        scenarios: &["journey"],
        levels: &[USERS],
        duration: "2s",
        env: &[("ARGON2_MEMORY_KIB", "64"), ("ARGON2_ITERATIONS", "1")],
        calibrate: Some((20.0, 35_000.0)),
        ..Miniature::default()
    }
    .spec();
    spec.load.think = Some("100ms..300ms".into());
    let cal = spec.calibrate.as_mut().expect("[calibrate]");
    cal.steps = 3;
    cal.level = USERS as f64;
    for k in &mut cal.checks {
        if k.level.is_some() {
            k.level = Some(USERS as f64);
        }
    }
    let run = run_spec(spec);
    let cal = assert_calibrated(&run, "APP_CPU_COST_US", "w3-nocache");
    assert_eq!(cal.metric, "throughput");
    for r in &run.records {
        assert_eq!(
            r.report.errors.total, 0,
            "{}: {:?}",
            r.config, r.report.errors
        );
    }
    for config in ["w3-nocache", "w6-cache"] {
        let cell = run.cell(config, "journey");
        assert!(cell.endpoints.len() >= 3, "{config}: {:?}", cell.endpoints);
    }
    assert_server_on_its_own_cpu(&run);
    // The January median (out of sample) and February's throughput
    // (predicted) at least; endpoint rows the short trial did not reach
    // have no check.
    let checks = &run.summary.checks;
    for (config, metric) in [("w3-nocache", "median latency"), ("w6-cache", "throughput")] {
        assert!(
            checks
                .iter()
                .any(|k| k.config == config && k.metric == metric && k.endpoint.is_none()),
            "{config} {metric}: {checks:?}"
        );
    }
    // The quiz list (4 of the journey's 15 weights) is reached: its
    // endpoint check is the row's median over the cell's trials.
    assert!(
        checks.iter().any(|k| k.config == "w6-cache"
            && k.endpoint.as_deref() == Some("GET /api/v1/quizzes")),
        "{checks:?}"
    );
    assert!(checks.iter().all(|k| k.error.is_finite()), "{checks:?}");
}

/// Document 000: one login per user as the document's script sent them
/// (30 at once), one thread per process for 1 and 2 processes, and the
/// document's claims at that level tested against the baseline.
#[test]
fn doc000_one_login_per_user_and_the_claims_tested() {
    let run = Miniature {
        file: "000-tornado-multiprocess.toml",
        configs: &["single", "multi"],
        scenarios: &["login"],
        levels: &[30],
        ..Miniature::default()
    }
    .run();
    assert_eq!(run.records.len(), 2);
    for r in &run.records {
        assert_eq!(r.report.requests, 30, "{}: one login per user", r.config);
        assert_eq!(
            r.report.successes, 30,
            "{}: {:?}",
            r.config, r.report.errors
        );
        let workers = if r.config == "multi" { 2 } else { 1 };
        let u = r.server.as_ref().expect("server usage");
        assert_eq!(u.worker_requests.len(), workers, "{:?}", u.worker_requests);
    }
    // 24% slower at 30, and no benefit; the 50-user and OWASP claims have
    // no cell here.
    let claims = &run.summary.claims;
    assert_eq!(claims.len(), 2, "{claims:?}");
    for c in claims {
        assert_eq!(
            (c.config.as_str(), c.against.as_str(), c.level),
            ("multi", "single", 30.0)
        );
        assert_eq!(c.metric, "mean latency");
    }
    let md = run.report();
    assert!(md.contains("## The document's claims"), "{md}");
    for c in claims {
        assert!(md.contains(&c.text), "{md}");
    }
}
