//! A small wrapper around `std::process::Command` that can show what it runs.

use std::fmt;
use std::io::{self, Write};
use std::path::Path;
use std::process::{Command, Output};

use crate::Result;

/// The workspace root, where every command runs.
fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ is inside the workspace")
}

/// A program with its arguments and extra environment variables.
///
/// The environment is inherited; variables set with [`Cmd::env`] apply to this command only.
pub struct Cmd {
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// The working directory, relative to the workspace root (`None`: the root).
    dir: Option<String>,
}

impl Cmd {
    pub fn new(program: &str) -> Self {
        Cmd {
            program: program.to_string(),
            args: Vec::new(),
            env: Vec::new(),
            dir: None,
        }
    }

    pub fn cargo() -> Self {
        Cmd::new("cargo")
    }

    pub fn rustup() -> Self {
        Cmd::new("rustup")
    }

    pub fn args<I>(mut self, args: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.args
            .extend(args.into_iter().map(|arg| arg.as_ref().to_string()));
        self
    }

    /// Runs the command in `dir`, a path relative to the workspace root.
    pub fn dir(mut self, dir: &str) -> Self {
        self.dir = Some(dir.to_string());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Prints the command line, then runs it with the terminal as its input and output.
    pub fn run(&self) -> Result {
        println!("$ {self}");
        let status = self
            .command()
            .status()
            .map_err(|err| self.spawn_error(err))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("`{self}` failed ({status})"))
        }
    }

    /// Prints the command line, then runs it showing its output only if it fails.
    pub fn run_quiet(&self) -> Result {
        println!("$ {self}");
        let (output, result) = self.run_captured();
        if result.is_err() {
            // Best effort: if the terminal is gone there is nobody to show the output to anyway.
            let _ = io::stdout().write_all(output.as_bytes());
        }
        result
    }

    /// Runs the command silently and returns its standard output, for queries like `rustup target list`.
    pub fn read(&self) -> Result<String> {
        let output = self.output()?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(format!(
                "`{self}` failed ({}):\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim_end()
            ))
        }
    }

    /// Runs the command with its output captured: what it printed (standard error, then standard
    /// output), and an error naming its exit status if it failed.
    pub fn run_captured(&self) -> (String, Result) {
        let output = match self.output() {
            Ok(output) => output,
            Err(err) => return (String::new(), Err(err)),
        };
        let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stdout));
        let result = if output.status.success() {
            Ok(())
        } else {
            Err(format!("`{self}` failed ({})", output.status))
        };
        (text, result)
    }

    fn output(&self) -> Result<Output> {
        self.command().output().map_err(|err| self.spawn_error(err))
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .envs(self.env.iter().map(|(key, value)| (key, value)))
            .current_dir(match &self.dir {
                Some(dir) => workspace_root().join(dir),
                None => workspace_root().to_path_buf(),
            });
        command
    }

    fn spawn_error(&self, err: io::Error) -> String {
        format!(
            "could not start `{}` ({err}); is it installed and on PATH?",
            self.program
        )
    }
}

/// Shows the command as it would be typed in a shell, environment variables first.
impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(dir) = &self.dir {
            write!(f, "(cd {} && ", quote(dir))?;
        }
        for (key, value) in &self.env {
            write!(f, "{key}={} ", quote(value))?;
        }
        write!(f, "{}", self.program)?;
        for arg in &self.args {
            write!(f, " {}", quote(arg))?;
        }
        if self.dir.is_some() {
            write!(f, ")")?;
        }
        Ok(())
    }
}

/// Single-quotes a word for the shell if it needs quoting.
fn quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=+:@,%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}
