//! Integration tests: the real server over HTTP on a random port, against
//! real PostgreSQL and Redis, each test with its own database and key prefix.

mod attempts;
mod auth;
mod cli;
mod files;
mod helpers;
mod ops;
mod pages;
mod quizzes;
mod students;
mod techempower;
