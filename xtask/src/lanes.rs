//! Commands in lanes that run side by side: each lane's commands one after another, all lanes at
//! once. Miri interprets a program on one core, so two lanes of Miri runs take the machine's two.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use crate::ci::format_time;
use crate::cmd::Cmd;
use crate::Result;

/// A command of a lane, with its name in the log.
pub struct Job {
    pub name: String,
    pub cmd: Cmd,
}

/// Runs `lanes` at once, each one's jobs in order. A job's output is printed whole when the job
/// ends, so that the lanes' outputs do not interleave. After a failure no lane starts another job;
/// the error names the first job that failed.
pub fn run(lanes: &[Vec<Job>]) -> Result {
    let stop = AtomicBool::new(false);
    let failure = Mutex::new(None::<String>);
    // Held while a job's output is printed.
    let terminal = Mutex::new(());
    std::thread::scope(|scope| {
        for (number, lane) in lanes.iter().enumerate() {
            let (stop, failure, terminal) = (&stop, &failure, &terminal);
            scope.spawn(move || {
                for job in lane {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let start = Instant::now();
                    let (output, result) = job.cmd.run_captured();
                    let time = format_time(start.elapsed());
                    let _printing = terminal.lock().unwrap_or_else(PoisonError::into_inner);
                    println!("\n--> lane {}: {}\n$ {}", number + 1, job.name, job.cmd);
                    print!("{output}");
                    match result {
                        Ok(()) => println!("<-- {}: passed in {time}", job.name),
                        Err(err) => {
                            println!("<-- {}: FAILED after {time}", job.name);
                            stop.store(true, Ordering::Relaxed);
                            failure
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .get_or_insert(format!("{}: {err}", job.name));
                            return;
                        }
                    }
                }
            });
        }
    });
    match failure.into_inner().unwrap_or_else(PoisonError::into_inner) {
        None => Ok(()),
        Some(err) => Err(err),
    }
}
