//! The client commands (`member`, `status`): HTTPS calls with the admin certificate, printed as
//! a table or JSON.

use anyhow::{Context, Result, bail};

use hanode_pki::fs::PkiDir;
use hanode_server::api::MemberView;
use hanode_server::state::DataDir;

use crate::{ClientArgs, Output};

struct Client {
    http: reqwest::Client,
    base: String,
}

fn connect(args: &ClientArgs) -> Result<Client> {
    let pki = PkiDir::new(&args.data_dir);
    let ca = hanode_pki::fs::read_file(&pki.ca_cert()).with_context(|| {
        format!(
            "no cluster CA in {}; pass --data-dir of a server",
            args.data_dir.display()
        )
    })?;
    let admin = pki
        .read_pair(pki.admin())
        .context("reading the admin certificate")?;
    let http = hanode_server::client::trusting(&ca, Some(&admin))?;
    let base = match &args.server {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => DataDir::new(&args.data_dir)
            .load_node()?
            .map(|node| node.api_url)
            .unwrap_or_else(|| format!("https://127.0.0.1:{}", hanode_server::DEFAULT_API_PORT)),
    };
    Ok(Client { http, base })
}

async fn check(response: reqwest::Response) -> Result<reqwest::Response> {
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let message = hanode_server::client::status_message(&body);
    bail!("{status}: {message}")
}

async fn get_members(client: &Client, path: &str) -> Result<Vec<MemberView>> {
    let url = format!("{}{path}", client.base);
    let response = client
        .http
        .get(&url)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    Ok(check(response).await?.json().await?)
}

fn print_members(members: &[MemberView], output: Output) -> Result<()> {
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(members)?);
        return Ok(());
    }
    println!(
        "{:<16} {:<14} {:<8} {:<7} {:<26} NOTE",
        "ID", "NAME", "ROLE", "LEADER", "PEER URL"
    );
    for m in members {
        let name = if m.name.is_empty() {
            "(unstarted)"
        } else {
            &m.name
        };
        let leader = if m.is_leader { "*" } else { "" };
        println!(
            "{:<16} {:<14} {:<8} {:<7} {:<26} {}",
            m.id, name, m.role, leader, m.peer_url, m.note
        );
    }
    Ok(())
}

/// `hanode member list`.
pub async fn member_list(args: &ClientArgs) -> Result<()> {
    let client = connect(args)?;
    print_members(
        &get_members(&client, "/hanode/v1/members").await?,
        args.output,
    )
}

/// `hanode member remove|promote ID`.
pub async fn member_change(args: &ClientArgs, id: &str, action: &str) -> Result<()> {
    let client = connect(args)?;
    let url = format!("{}/hanode/v1/members/{id}/{action}", client.base);
    let response = client
        .http
        .post(&url)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let members: Vec<MemberView> = check(response).await?.json().await?;
    print_members(&members, args.output)
}

/// `hanode status`.
pub async fn status(args: &ClientArgs) -> Result<()> {
    let client = connect(args)?;
    let members = get_members(&client, "/hanode/v1/status").await?;
    if args.output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&members)?);
        return Ok(());
    }
    println!(
        "{:<16} {:<14} {:<8} {:<10} {:<6} {:<9} {:<8} HEALTH",
        "ID", "NAME", "ROLE", "STATE", "TERM", "APPLIED", "LEADER"
    );
    for m in &members {
        let name = if m.name.is_empty() {
            "(unstarted)"
        } else {
            &m.name
        };
        let (state, term, applied, health) = match &m.status {
            Some(s) => (
                s.role.clone(),
                s.term.to_string(),
                s.applied_index.to_string(),
                if s.ready {
                    "healthy".to_string()
                } else {
                    format!("unhealthy: {}", s.error)
                },
            ),
            None => (
                "-".into(),
                "-".into(),
                "-".into(),
                format!("unreachable: {}", m.status_error),
            ),
        };
        let leader = if m.is_leader { "*" } else { "" };
        println!(
            "{:<16} {:<14} {:<8} {:<10} {:<6} {:<9} {:<8} {}",
            m.id, name, m.role, state, term, applied, leader, health
        );
    }
    Ok(())
}
