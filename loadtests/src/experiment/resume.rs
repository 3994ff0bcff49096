//! Long runs: the server build a run was made with ([`Build`]: the source
//! tree's git commit and the binary's SHA-256), the runs a results folder
//! already holds and whether a new run may join them ([`previous_runs`]:
//! same experiment file, same build unless mixing is allowed), and the
//! subset of cells `--only` selects ([`Selector`]). It reads folders and
//! the binary; the runner decides what to run.

use std::io::Read as _;
use std::path::Path;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::results::load_runs;
use super::run::RunRecord;
use super::spec::ExperimentSpec;

/// The server build that produced a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Build {
    /// `git rev-parse HEAD` of the server's working directory, with
    /// `-dirty` when it had uncommitted changes.
    pub commit: Option<String>,
    /// SHA-256 of the server binary.
    pub binary_sha256: Option<String>,
    /// With `--target`: the URL of the server the runner did not start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl Build {
    /// The build of `binary` (or of a `target`), its source at `workdir`.
    pub fn of(binary: Option<&Path>, workdir: &Path, target: Option<&str>) -> anyhow::Result<Self> {
        let binary_sha256 = binary.map(sha256_of).transpose()?;
        Ok(Build {
            commit: git_commit(workdir),
            binary_sha256,
            target: target.map(str::to_string),
        })
    }

    /// `abc1234def56, binary sha256 0f1e2d3c4b5a`; a commit built with
    /// uncommitted changes keeps its `-dirty`.
    pub fn short(&self) -> String {
        let c = self.commit.as_deref().map_or("?".to_string(), |c| {
            let (commit, dirty) = match c.strip_suffix("-dirty") {
                Some(commit) => (commit, "-dirty"),
                None => (c, ""),
            };
            format!("{}{dirty}", &commit[..commit.len().min(12)])
        });
        match (&self.binary_sha256, &self.target) {
            (Some(h), _) => format!("{c}, binary sha256 {}", &h[..h.len().min(12)]),
            (None, Some(t)) => format!("{c}, target {t}"),
            (None, None) => c.to_string(),
        }
    }
}

fn sha256_of(path: &Path) -> anyhow::Result<String> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn git_commit(dir: &Path) -> Option<String> {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "HEAD"])?;
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty {
        format!("{commit}-dirty")
    } else {
        commit
    })
}

/// The runs already in `out`, when the run may continue them: none for a
/// new folder; with runs there, `resume` must be set, the folder's
/// experiment file must be this one, and (unless `mix_builds`) every run
/// must come from `build`.
pub fn previous_runs(
    out: &Path,
    spec: &ExperimentSpec,
    build: &Build,
    resume: bool,
    mix_builds: bool,
) -> anyhow::Result<Vec<RunRecord>> {
    let runs_dir = out.join("runs");
    let has_runs = std::fs::read_dir(&runs_dir)
        .map(|mut d| d.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json"))))
        .unwrap_or(false);
    if !has_runs {
        return Ok(vec![]);
    }
    if !resume {
        bail!(
            "{} already holds runs: pass --resume to continue that run (finished cells are skipped), or choose another --out",
            out.display()
        );
    }
    let echo = out.join("experiment.toml");
    if let Ok(text) = std::fs::read_to_string(&echo) {
        let theirs: ExperimentSpec =
            serde_json::from_str(&text).with_context(|| format!("invalid {}", echo.display()))?;
        if !theirs.measures_like(spec) {
            bail!(
                "{} was made with another version of experiment {}: resume only with a file that measures the same (its report's prose and the document's figures may differ), or choose another --out",
                out.display(),
                spec.id
            );
        }
    }
    let runs = load_runs(out)?;
    if !mix_builds {
        if let Some(other) = runs.iter().find(|r| r.build.as_ref() != Some(build)) {
            bail!(
                "{} holds runs of another server build ({} in {}-{}-{}-t{}; this run: {}): pass --mix-builds to add to them anyway, or choose another --out",
                out.display(),
                other.build.as_ref().map_or("unrecorded".into(), Build::short),
                other.config,
                other.scenario,
                other.level,
                other.trial,
                build.short()
            );
        }
    }
    Ok(runs)
}

/// A `--only` selector: `CONFIG[/SCENARIO][@LEVEL]`, `*` for any part.
#[derive(Clone, Debug, PartialEq)]
pub struct Selector {
    config: Option<String>,
    scenario: Option<String>,
    level: Option<f64>,
}

impl Selector {
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        let (rest, level) = match s.split_once('@') {
            Some((r, l)) => (
                r,
                Some(
                    l.parse::<f64>()
                        .with_context(|| format!("--only {s:?}: level {l:?} is not a number"))?,
                ),
            ),
            None => (s, None),
        };
        let (config, scenario) = match rest.split_once('/') {
            Some((c, sc)) => (c, Some(sc)),
            None => (rest, None),
        };
        let part = |p: &str| (!p.is_empty() && p != "*").then(|| p.to_string());
        Ok(Selector {
            config: part(config),
            scenario: scenario.and_then(part),
            level,
        })
    }

    pub fn matches(&self, config: &str, scenario: &str, level: f64) -> bool {
        self.config.as_deref().is_none_or(|c| c == config)
            && self.scenario.as_deref().is_none_or(|s| s == scenario)
            && self.level.is_none_or(|l| l == level)
    }

    /// Checks the selector names configurations and scenarios that exist.
    pub fn check(&self, spec: &ExperimentSpec) -> anyhow::Result<()> {
        if let Some(c) = &self.config {
            if !spec.configs.iter().any(|x| &x.name == c) {
                bail!("--only: no configuration {c:?} in experiment {}", spec.id);
            }
        }
        if let Some(s) = &self.scenario {
            if !spec.load.scenarios.iter().any(|x| &x.name() == s) {
                bail!("--only: no scenario {s:?} in experiment {}", spec.id);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_match_cells() {
        let s = Selector::parse("multi/login@30").unwrap();
        assert!(s.matches("multi", "login", 30.0));
        assert!(!s.matches("multi", "login", 50.0));
        assert!(!s.matches("single", "login", 30.0));
        let any = Selector::parse("*@50").unwrap();
        assert!(any.matches("single", "healthz", 50.0) && !any.matches("single", "healthz", 5.0));
        assert!(Selector::parse("multi").unwrap().matches("multi", "x", 1.0));
        assert!(Selector::parse("a@x").is_err());
        let b = Build {
            commit: Some("0123456789abcdef".into()),
            binary_sha256: Some("ffeeddccbbaa99887766".into()),
            target: None,
        };
        assert_eq!(b.short(), "0123456789ab, binary sha256 ffeeddccbbaa");
        assert_eq!(hex(&[0, 255, 16]), "00ff10");
    }

    /// A refusal to mix builds must show what differs: a checkout with
    /// uncommitted changes differs from its commit only by `-dirty`.
    #[test]
    fn a_dirty_build_says_so_in_short() {
        let b = Build {
            commit: Some("0123456789abcdef0123-dirty".into()),
            binary_sha256: Some("ffeeddccbbaa99887766".into()),
            target: None,
        };
        assert_eq!(b.short(), "0123456789ab-dirty, binary sha256 ffeeddccbbaa");
    }
}
