//! A small text classifier for free-text answers (document 001's "ML
//! classifier"): a linear model over hashed word and character-trigram
//! features, trained at load time on a built-in labelled corpus.
//!
//! Each feature is hashed to `HASHES` rows of one weight table (hash
//! embedding, which keeps collisions rare in a small table); the table's
//! size is the memory knob (`GRADE_MODEL_MB`). The table is initialised
//! with small noise, so its pages are really resident, then trained with a
//! perceptron. The CPU knob (`GRADE_COST`) is test-time augmentation: the
//! text is scored under that many feature dropouts and the probabilities
//! are averaged, a standard way to get a calibrated confidence, whose cost
//! grows linearly with the number of rounds.
//!
//! One model per process, shared by all its threads (`Arc`), loaded lazily
//! on the CPU pool so a worker is ready before it finishes training.

use std::hash::Hasher;

const HASHES: u64 = 4;
const EPOCHS: usize = 8;

/// Topic labels and training sentences.
const CORPUS: &[(&str, &[&str])] = &[
    (
        "sql",
        &[
            "select name from users where id = 1",
            "a join combines rows of two tables on a key",
            "an index makes the where clause lookup fast",
            "group by with count aggregates rows",
            "a transaction commits or rolls back atomically",
            "insert into attempts values and update progress",
            "the primary key is unique and not null",
            "postgres uses mvcc for isolation",
        ],
    ),
    (
        "http",
        &[
            "the server answers get requests with status 200",
            "a post request sends a json body",
            "headers carry cookies and content type",
            "keep-alive reuses the tcp connection for many requests",
            "status 404 means not found and 503 service unavailable",
            "the url path and query string identify the resource",
            "rest apis use verbs like put and delete",
            "a reverse proxy such as nginx forwards requests",
        ],
    ),
    (
        "concurrency",
        &[
            "threads share memory and need a mutex",
            "a race condition happens when two threads write at once",
            "async await runs many tasks on one event loop",
            "a deadlock occurs when locks are taken in different orders",
            "processes do not share memory unlike threads",
            "the gil lets one python thread run at a time",
            "a semaphore limits how many tasks run concurrently",
            "fork creates a child process copying the parent",
        ],
    ),
    (
        "algorithms",
        &[
            "binary search halves the sorted array each step",
            "quicksort partitions around a pivot in n log n",
            "a hash map gives constant time lookup on average",
            "recursion calls the function on a smaller input",
            "dynamic programming stores results of subproblems",
            "breadth first search visits a graph level by level",
            "big o notation describes the growth of running time",
            "a linked list inserts in constant time",
        ],
    ),
    (
        "python",
        &[
            "a list comprehension builds a list in one line",
            "def defines a function and return gives its value",
            "pip installs packages from pypi",
            "a dictionary maps keys to values",
            "indentation defines blocks in python code",
            "a for loop iterates over range of numbers",
            "exceptions are caught with try except",
            "import loads a module such as numpy or pandas",
        ],
    ),
    (
        "off_topic",
        &[
            "i do not know",
            "the weather is nice today",
            "my favourite food is pizza",
            "can we have a break please",
            "hello world",
            "this quiz is too hard",
            "asdf qwerty",
            "no idea sorry",
        ],
    ),
];

pub struct Classifier {
    labels: Vec<&'static str>,
    /// rows x labels weights, row-major.
    weights: Vec<f32>,
    rows: u64,
    rounds: u32,
}

/// The answer of one classification.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub label: &'static str,
    /// Mean probability of `label` over the augmentation rounds, 0..1.
    pub score: f64,
}

impl Classifier {
    /// Builds and trains a model of about `model_mb` MiB evaluated with
    /// `rounds` augmentation rounds per request.
    pub fn train(model_mb: u32, rounds: u32) -> Classifier {
        let labels: Vec<&'static str> = CORPUS.iter().map(|(l, _)| *l).collect();
        let k = labels.len() as u64;
        let rows = ((model_mb as u64) << 20) / (4 * k);
        let mut weights = vec![0f32; (rows * k) as usize];
        // Small deterministic noise: a real initialisation, and it makes
        // the whole table resident so the memory knob is honest.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for w in weights.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *w = ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 1e-3;
        }
        let mut model = Classifier {
            labels,
            weights,
            rows: rows.max(1),
            rounds: rounds.max(1),
        };
        let examples: Vec<(Vec<u64>, usize)> = CORPUS
            .iter()
            .enumerate()
            .flat_map(|(label, (_, texts))| texts.iter().map(move |t| (features(t), label)))
            .collect();
        for _ in 0..EPOCHS {
            for (feats, label) in &examples {
                let scores = model.scores(feats, None);
                let predicted = argmax(&scores);
                if predicted != *label {
                    model.update(feats, *label, 1.0);
                    model.update(feats, predicted, -1.0);
                }
            }
        }
        model
    }

    pub fn size_bytes(&self) -> usize {
        self.weights.len() * 4
    }

    fn row(&self, feature: u64, h: u64) -> usize {
        (mix(feature ^ h.wrapping_mul(0xA24B_AED4_963E_E407)) % self.rows) as usize
    }

    fn update(&mut self, feats: &[u64], label: usize, delta: f32) {
        let k = self.labels.len();
        for f in feats {
            for h in 0..HASHES {
                let r = self.row(*f, h);
                self.weights[r * k + label] += delta;
            }
        }
    }

    /// Raw label scores; `dropout` = (round seed) drops ~1/4 of features.
    fn scores(&self, feats: &[u64], dropout: Option<u64>) -> Vec<f32> {
        let k = self.labels.len();
        let mut out = vec![0f32; k];
        for f in feats {
            if let Some(seed) = dropout {
                if mix(f ^ seed) % 4 == 0 {
                    continue;
                }
            }
            for h in 0..HASHES {
                let r = self.row(*f, h) * k;
                for (o, w) in out.iter_mut().zip(&self.weights[r..r + k]) {
                    *o += w;
                }
            }
        }
        out
    }

    /// Classifies `text`. CPU-heavy with large `GRADE_COST`: call on the CPU pool.
    pub fn predict(&self, text: &str) -> Prediction {
        let feats = features(text);
        let k = self.labels.len();
        let mut mean = vec![0f64; k];
        for round in 0..self.rounds {
            let dropout = (round > 0).then(|| mix(round as u64 + 1));
            let scores = self.scores(&feats, dropout);
            for (m, p) in mean.iter_mut().zip(softmax(&scores)) {
                *m += p / self.rounds as f64;
            }
        }
        let best = argmax(&mean.iter().map(|p| *p as f32).collect::<Vec<_>>());
        Prediction {
            label: self.labels[best],
            score: (mean[best] * 1000.0).round() / 1000.0,
        }
    }
}

/// Hashed features of a text: lower-cased words and character trigrams.
fn features(text: &str) -> Vec<u64> {
    let lower = text.to_lowercase();
    let mut feats = Vec::new();
    for word in lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        feats.push(hash_str(word, 1));
        let padded: Vec<char> = format!(" {word} ").chars().collect();
        for tri in padded.windows(3) {
            let s: String = tri.iter().collect();
            feats.push(hash_str(&s, 2));
        }
    }
    feats
}

fn hash_str(s: &str, kind: u64) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write_u64(kind);
    h.write(s.as_bytes());
    h.finish()
}

/// SplitMix64 finalizer: a cheap, well-spread mixing of 64 bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn softmax(scores: &[f32]) -> Vec<f64> {
    let max = scores.iter().cloned().fold(f32::MIN, f32::max) as f64;
    let exps: Vec<f64> = scores.iter().map(|s| (*s as f64 - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold(
            (0, f32::MIN),
            |(bi, bv), (i, x)| if *x > bv { (i, *x) } else { (bi, bv) },
        )
        .0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_its_corpus_and_generalizes_a_little() {
        let c = Classifier::train(1, 4);
        assert_eq!(c.predict("select id from users where id = 2").label, "sql");
        assert_eq!(
            c.predict("a mutex protects memory shared by threads").label,
            "concurrency"
        );
        assert_eq!(
            c.predict("the http server returned status 503").label,
            "http"
        );
        let p = c.predict("binary search on a sorted array");
        assert_eq!(p.label, "algorithms");
        assert!(p.score > 0.0 && p.score <= 1.0);
    }

    #[test]
    fn memory_knob_sizes_the_table() {
        let c = Classifier::train(2, 1);
        let mb = c.size_bytes() as f64 / (1 << 20) as f64;
        assert!((1.9..=2.0).contains(&mb), "{mb}");
    }

    #[test]
    fn deterministic() {
        let a = Classifier::train(1, 3).predict("fork a child process");
        let b = Classifier::train(1, 3).predict("fork a child process");
        assert_eq!(a, b);
    }

    #[test]
    fn empty_text_still_answers() {
        let p = Classifier::train(1, 2).predict("");
        assert!(p.score > 0.0);
    }
}
