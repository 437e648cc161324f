//! Helpers shared by integration tests (each test crate uses what it needs).
#![allow(dead_code)]

pub mod tmux;
