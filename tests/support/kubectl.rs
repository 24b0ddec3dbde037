//! The real `kubectl` against one server, through that server's `admin.kubeconfig`.
//!
//! Each instance gets its own `HOME`, so kubectl's discovery and HTTP caches (and the gcloud
//! dispatcher's cached `/version`) never leak between tests or from earlier runs.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// How long one kubectl command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the gcloud SDK keeps the versioned kubectl binaries the dispatcher on PATH runs.
pub const VERSIONED_DIR: &str = "/usr/lib/google-cloud-sdk/bin";

/// A kubectl bound to one server.
pub struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
    home: tempfile::TempDir,
}

impl Kubectl {
    /// The `kubectl` on PATH, talking to the server whose data dir is `data_dir`.
    pub fn new(data_dir: &Path) -> Result<Kubectl> {
        Kubectl::with_binary(Path::new("kubectl"), data_dir)
    }

    /// A specific kubectl binary (for example `kubectl.1.27`).
    pub fn with_binary(binary: &Path, data_dir: &Path) -> Result<Kubectl> {
        let kubeconfig = data_dir.join("admin.kubeconfig");
        anyhow::ensure!(
            kubeconfig.exists(),
            "{} was not written",
            kubeconfig.display()
        );
        Ok(Kubectl {
            binary: binary.to_path_buf(),
            kubeconfig,
            home: tempfile::tempdir()?,
        })
    }

    /// The kubectl binary of Kubernetes minor `minor` from the gcloud SDK.
    pub fn versioned(minor: u32) -> PathBuf {
        Path::new(VERSIONED_DIR).join(format!("kubectl.1.{minor}"))
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.home.path())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// Runs kubectl with optional stdin; returns its output whatever the exit code.
    pub async fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<Output> {
        let mut command = self.command(args);
        command.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = command
            .spawn()
            .with_context(|| format!("running {}", self.binary.display()))?;
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().context("kubectl stdin")?;
            pipe.write_all(input.as_bytes()).await?;
            drop(pipe);
        }
        tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
            .await
            .with_context(|| format!("kubectl {args:?} did not finish in {COMMAND_TIMEOUT:?}"))?
            .map_err(Into::into)
    }

    /// Runs kubectl and returns stdout; fails with stderr on a non-zero exit.
    pub async fn ok(&self, args: &[&str]) -> Result<String> {
        self.ok_with_stdin(args, None).await
    }

    /// `kubectl apply -f -` (or any command reading `-f -`) with `yaml` on stdin.
    pub async fn ok_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let out = self.run(args, stdin).await?;
        if !out.status.success() {
            bail!(
                "{} {args:?} failed ({}): {}{}",
                self.binary.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs kubectl expecting a non-zero exit; returns stderr.
    pub async fn fails(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let out = self.run(args, stdin).await?;
        if out.status.success() {
            bail!(
                "kubectl {args:?} succeeded but should have failed: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        Ok(String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// Starts a long-running kubectl (a watch); its stdout lines are read with [`Streaming`].
    pub fn spawn(&self, args: &[&str]) -> Result<Streaming> {
        let mut command = self.command(args);
        command.stdin(Stdio::null()).stderr(Stdio::null());
        let mut child = command.spawn().context("starting kubectl")?;
        let stdout = child.stdout.take().context("kubectl stdout")?;
        Ok(Streaming {
            child,
            lines: BufReader::new(stdout).lines(),
        })
    }
}

/// A running kubectl whose output is read line by line; killed on drop.
pub struct Streaming {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Streaming {
    /// Reads lines until one contains every one of `needles`; fails at the deadline or at end
    /// of output.
    pub async fn line_containing(&mut self, needles: &[&str], timeout: Duration) -> Result<String> {
        let mut seen = Vec::new();
        let found = tokio::time::timeout(timeout, async {
            while let Some(line) = self.lines.next_line().await? {
                if needles.iter().all(|n| line.contains(n)) {
                    return Ok::<_, anyhow::Error>(Some(line));
                }
                seen.push(line);
            }
            Ok(None)
        })
        .await;
        match found {
            Ok(Ok(Some(line))) => Ok(line),
            Ok(Ok(None)) => {
                bail!("kubectl exited before printing {needles:?}; it printed {seen:?}")
            }
            Ok(Err(e)) => Err(e),
            Err(_) => bail!("no line with {needles:?} within {timeout:?}; saw {seen:?}"),
        }
    }

    /// Stops the process.
    pub async fn stop(mut self) -> Result<()> {
        self.child.kill().await?;
        Ok(())
    }
}
