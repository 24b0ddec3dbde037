//! Local processes behind endpoints: who listens on a port, how it was started, signals.
//! (Linux /proc; no unsafe code: signals go through kill(1).)

use std::path::PathBuf;
use std::process::Stdio;

use anyhow::{Context, Result, bail};

/// How to start a process again.
#[derive(Clone, Debug)]
pub struct ProcessSpec {
    /// argv.
    pub cmdline: Vec<String>,
    /// Working directory.
    pub cwd: PathBuf,
}

fn parse_hex_addr(text: &str) -> Option<(std::net::Ipv4Addr, u16)> {
    let (ip, port) = text.split_once(':')?;
    let ip = u32::from_str_radix(ip, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    // /proc/net/tcp prints the address in host byte order (little-endian here).
    Some((std::net::Ipv4Addr::from(ip.swap_bytes()), port))
}

/// The pid of the process listening on `host:port` (IPv4).
pub fn pid_listening_on(host: std::net::Ipv4Addr, port: u16) -> Result<u32> {
    let table = std::fs::read_to_string("/proc/net/tcp").context("reading /proc/net/tcp")?;
    let inode = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (ip, p) = parse_hex_addr(fields.get(1)?)?;
            let listening = *fields.get(3)? == "0A";
            (listening && p == port && (ip == host || ip.is_unspecified()))
                .then(|| fields.get(9).map(|s| s.to_string()))?
        })
        .next()
        .with_context(|| format!("nothing listens on {host}:{port}"))?;
    let needle = format!("socket:[{inode}]");
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|target| target.to_string_lossy() == needle)
            {
                return Ok(pid);
            }
        }
    }
    bail!("no process owns the socket listening on {host}:{port}")
}

/// Reads how `pid` was started.
pub fn capture(pid: u32) -> Result<ProcessSpec> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline"))
        .with_context(|| format!("reading cmdline of {pid}"))?;
    let cmdline = raw
        .split(|b| *b == 0)
        .filter(|part| !part.is_empty())
        .map(|part| String::from_utf8_lossy(part).into_owned())
        .collect();
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd"))
        .with_context(|| format!("reading cwd of {pid}"))?;
    Ok(ProcessSpec { cmdline, cwd })
}

/// Sends a signal by name (KILL, STOP, CONT, TERM).
pub fn signal(pid: u32, name: &str) -> Result<()> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()?;
    anyhow::ensure!(status.success(), "kill -{name} {pid} failed");
    Ok(())
}

/// Starts the process again, detached, logging to `log`; returns the new pid.
pub fn respawn(spec: &ProcessSpec, log: &std::path::Path) -> Result<u32> {
    let (program, args) = spec.cmdline.split_first().context("empty command line")?;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let child = std::process::Command::new(program)
        .args(args)
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("restarting {program}"))?;
    Ok(child.id())
}

/// Resident memory of a process in KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .context("no VmRSS")
}

/// CPU time (user + system) a process has used, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("bad stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11).context("utime")?.parse()?;
    let stime: u64 = fields.get(12).context("stime")?.parse()?;
    Ok(utime + stime)
}

/// Clock ticks per second (USER_HZ; 100 on Linux).
pub fn ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
        .unwrap_or(100)
}

/// Host and port of an endpoint URL.
pub fn host_port(endpoint: &str) -> Result<(std::net::Ipv4Addr, u16)> {
    let rest = endpoint
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let (host, port) = rest
        .rsplit_once(':')
        .with_context(|| format!("no port in {endpoint}"))?;
    Ok((
        host.parse()
            .with_context(|| format!("{host} is not an IPv4 address"))?,
        port.trim_end_matches('/').parse()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_addresses_decode() {
        assert_eq!(
            parse_hex_addr("0100007F:0959"),
            Some((std::net::Ipv4Addr::new(127, 0, 0, 1), 2393))
        );
        assert_eq!(
            host_port("https://127.0.0.2:2379").unwrap(),
            (std::net::Ipv4Addr::new(127, 0, 0, 2), 2379)
        );
    }
}
