//! Reading one variable as a typed value, falling back to its default;
//! errors name the variable, its value and what was expected.

use std::time::Duration;

use super::defaults::DEFAULTS;
use super::{Compression, ConfigError, Processes};

pub(super) struct Reader<'f, F> {
    pub(super) lookup: &'f F,
}

impl<'a, F: Fn(&str) -> Option<&'a str>> Reader<'_, F> {
    pub(super) fn raw(&self, var: &str) -> &'a str {
        match (self.lookup)(var) {
            Some(v) if !v.trim().is_empty() => v.trim(),
            _ => DEFAULTS
                .iter()
                .find(|(k, _)| *k == var)
                .map(|(_, v)| *v)
                .expect("every variable has a default"),
        }
    }

    fn err(&self, var: &str, expected: impl Into<String>) -> ConfigError {
        ConfigError {
            var: var.into(),
            value: self.raw(var).into(),
            expected: expected.into(),
        }
    }

    pub(super) fn string(&self, var: &str) -> String {
        self.raw(var).to_string()
    }

    pub(super) fn parse<T: std::str::FromStr>(
        &self,
        var: &str,
        expected: &str,
    ) -> Result<T, ConfigError> {
        self.raw(var).parse().map_err(|_| self.err(var, expected))
    }

    pub(super) fn ranged(&self, var: &str, min: usize, max: usize) -> Result<usize, ConfigError> {
        let expected = || format!("an integer from {min} to {max}");
        let n: usize = self
            .raw(var)
            .parse()
            .map_err(|_| self.err(var, expected()))?;
        if n < min || n > max {
            return Err(self.err(var, expected()));
        }
        Ok(n)
    }

    pub(super) fn secs(&self, var: &str, min: usize) -> Result<Duration, ConfigError> {
        Ok(Duration::from_secs(
            self.ranged(var, min, 10 * 365 * 86400)? as u64,
        ))
    }

    pub(super) fn optional_secs(&self, var: &str) -> Result<Option<Duration>, ConfigError> {
        let d = self.secs(var, 0)?;
        Ok((!d.is_zero()).then_some(d))
    }

    pub(super) fn bool(&self, var: &str) -> Result<bool, ConfigError> {
        match self.raw(var).to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(self.err(var, "true or false")),
        }
    }

    pub(super) fn choice<T: Copy>(
        &self,
        var: &str,
        options: &[(&str, T)],
    ) -> Result<T, ConfigError> {
        let v = self.raw(var).to_ascii_lowercase();
        options
            .iter()
            .find(|(name, _)| *name == v)
            .map(|(_, t)| *t)
            .ok_or_else(|| {
                let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
                self.err(var, format!("one of {}", names.join(", ")))
            })
    }

    pub(super) fn processes(&self) -> Result<Processes, ConfigError> {
        match self.raw("PROCESSES").to_ascii_lowercase().as_str() {
            "0" | "auto" => Ok(Processes::Auto),
            _ => Ok(Processes::Count(self.ranged("PROCESSES", 0, 1024)?)),
        }
    }

    pub(super) fn compression(&self) -> Result<Compression, ConfigError> {
        let mut c = Compression {
            level: self.ranged("COMPRESSION_LEVEL", 0, 22)? as i32,
            min_bytes: self.ranged("COMPRESSION_MIN_BYTES", 0, u16::MAX as usize)? as u16,
            ..Compression::default()
        };
        for part in self.raw("COMPRESSION").to_ascii_lowercase().split(',') {
            match part.trim() {
                "off" | "none" | "" => {}
                "gzip" => c.gzip = true,
                "br" | "brotli" => c.br = true,
                "zstd" => c.zstd = true,
                "all" => (c.gzip, c.br, c.zstd) = (true, true, true),
                _ => {
                    return Err(self.err(
                        "COMPRESSION",
                        "off, or a comma list of gzip, br, zstd (or all)",
                    ))
                }
            }
        }
        Ok(c)
    }
}
