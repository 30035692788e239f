//! `weft crawl` end to end: the binary against a local fixture site (loopback only).

#[path = "../../crawl/tests/crawl_fixture/mod.rs"]
mod crawl_fixture;

use std::process::Stdio;

use crawl_fixture::{File, Spec, start};
use serde_json::Value;

fn weft() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_weft"));
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    cmd
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

#[tokio::test]
async fn streams_one_json_line_per_page_to_stdout() {
    let site = start(Spec::default()).await;
    let out = weft()
        .args(["crawl", "--depth", "2", "-q"])
        .arg(site.url("/chain/1"))
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let lines = json_lines(&String::from_utf8(out.stdout).unwrap());
    let urls: Vec<&str> = lines.iter().map(|l| l["url"].as_str().unwrap()).collect();
    assert_eq!(
        urls,
        [
            site.url("/chain/1"),
            site.url("/chain/2"),
            site.url("/chain/3")
        ]
    );
    let first = &lines[0];
    for field in [
        "url",
        "final_url",
        "status",
        "content_type",
        "title",
        "depth",
        "links",
        "bytes",
        "fetch_ms",
        "error",
    ] {
        assert!(first.get(field).is_some(), "missing {field} in {first}");
    }
    assert_eq!(first["status"], 200);
    assert_eq!(first["title"], "Chain 1");
    assert_eq!(first["links"], 1);
    assert_eq!(first["error"], Value::Null);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("crawled 3 pages"), "{stderr}");
}

#[tokio::test]
async fn sitemaps_add_the_pages_they_list_and_the_summary_counts_them_and_names_failures() {
    let mut spec = Spec {
        robots: Some(
            "User-agent: *\nDisallow: /private/\nSitemap: {base}/s.xml.gz\nSitemap: {base}/gone.xml\n"
                .to_owned(),
        ),
        ..Spec::default()
    };
    spec.files.insert(
        "/s.xml.gz".to_owned(),
        File {
            content_type: "application/x-gzip",
            gzip: true,
            body: b"<urlset><url><loc>{base}/chain/7</loc></url>\
                    <url><loc>http://elsewhere.invalid/</loc></url></urlset>"
                .to_vec(),
            ..File::default()
        },
    );
    let site = start(spec).await;
    let out = weft()
        .args(["crawl", "--depth", "0", "-q", "--sitemaps"])
        .arg(site.url("/chain/1"))
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let lines = json_lines(&String::from_utf8(out.stdout).unwrap());
    let mut pages: Vec<(&str, Option<&str>)> = lines
        .iter()
        .map(|l| {
            (
                l["url"].as_str().unwrap(),
                l.get("sitemap").and_then(Value::as_str),
            )
        })
        .collect();
    pages.sort();
    let sitemap = site.url("/s.xml.gz");
    assert_eq!(
        pages,
        [
            (site.url("/chain/1").as_str(), None),
            (site.url("/chain/7").as_str(), Some(sitemap.as_str()))
        ]
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("1 sitemaps read (2 urls, 1 out of scope, 1 errors)"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "weft crawl: sitemap {}: cannot fetch it: http status 404",
            site.url("/gone.xml")
        )),
        "{stderr}"
    );

    // Without the flag, no sitemap is read.
    let out = weft()
        .args(["crawl", "--depth", "0", "-q"])
        .arg(site.url("/chain/1"))
        .output()
        .await
        .unwrap();
    assert_eq!(json_lines(&String::from_utf8(out.stdout).unwrap()).len(), 1);
    assert_eq!(site.seen.hits("/s.xml.gz"), 1);
}

#[tokio::test]
async fn max_sitemaps_caps_the_documents_read_and_needs_sitemaps() {
    let mut spec = Spec {
        robots: Some("Sitemap: {base}/a.xml\nSitemap: {base}/b.xml\n".to_owned()),
        ..Spec::default()
    };
    for (name, page) in [("a", "/chain/5"), ("b", "/chain/6")] {
        spec.files.insert(
            format!("/{name}.xml"),
            File::xml(format!(
                "<urlset><url><loc>{{base}}{page}</loc></url></urlset>"
            )),
        );
    }
    let site = start(spec).await;
    let out = weft()
        .args([
            "crawl",
            "--depth",
            "0",
            "-q",
            "--sitemaps",
            "--max-sitemaps",
            "1",
        ])
        .arg(site.url("/chain/1"))
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(json_lines(&String::from_utf8(out.stdout).unwrap()).len(), 2);
    assert_eq!(site.seen.hits("/a.xml") + site.seen.hits("/b.xml"), 1);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("lists 1 sitemaps past the limit of 1 documents: not fetched"),
        "{stderr}"
    );

    let out = weft()
        .args(["crawl", "--max-sitemaps", "1"])
        .arg(site.url("/chain/1"))
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[tokio::test]
async fn reads_seeds_from_a_file_and_writes_to_a_file() {
    let site = start(Spec::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let seeds = dir.path().join("seeds.txt");
    let output = dir.path().join("out.jsonl");
    std::fs::write(
        &seeds,
        format!(
            "# two seeds\n{}\n\n{}\n",
            site.url("/cycle/a"),
            site.url("/broken")
        ),
    )
    .unwrap();
    let out = weft()
        .args(["crawl", "--depth", "0", "-q", "-i"])
        .arg(&seeds)
        .arg("-o")
        .arg(&output)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty());
    let lines = json_lines(&std::fs::read_to_string(&output).unwrap());
    let mut got: Vec<(String, Value)> = lines
        .iter()
        .map(|l| (l["url"].as_str().unwrap().to_owned(), l["error"].clone()))
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        [
            (site.url("/broken"), Value::from("http status 404")),
            (site.url("/cycle/a"), Value::Null),
        ]
    );
}

#[tokio::test]
async fn bad_arguments_exit_with_2() {
    let out = weft()
        .args(["crawl", "-q", "not a url"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid seed url"));
    let out = weft().args(["crawl", "-q"]).output().await.unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[cfg(unix)]
#[tokio::test]
async fn ctrl_c_leaves_a_valid_file_with_every_page_so_far_and_a_summary() {
    // An endless site: the crawl only stops because of the signal.
    let site = start(Spec::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.jsonl");
    let child = weft()
        .args(["crawl", "-q", "-j", "4", "-o"])
        .arg(&output)
        .arg(site.url("/inf/0"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    site.seen.wait_for_requests(40).await;
    let pid = child.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().await.unwrap();
    assert_eq!(out.status.code(), Some(130), "{out:?}");

    let text = std::fs::read_to_string(&output).unwrap();
    assert!(text.ends_with('\n'), "the last line is complete");
    let lines = json_lines(&text);
    assert!(lines.len() >= 30, "only {} lines", lines.len());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(&format!("crawled {} pages", lines.len())),
        "the summary counts exactly the lines written: {stderr}"
    );
    assert!(stderr.contains("cancelled (interrupted)"), "{stderr}");
}

#[tokio::test]
async fn a_bad_seed_leaves_an_existing_output_file_untouched() {
    let site = start(Spec::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("existing.jsonl");
    std::fs::write(&output, "{\"kept\":true}\n").unwrap();
    for bad in [
        vec!["not a url".to_owned()],
        vec![site.url("/chain/1"), "ftp://example.com/".to_owned()],
    ] {
        let out = weft()
            .args(["crawl", "-q", "-o"])
            .arg(&output)
            .args(&bad)
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert_eq!(
            std::fs::read_to_string(&output).unwrap(),
            "{\"kept\":true}\n"
        );
    }
    assert_eq!(site.seen.total.load(std::sync::atomic::Ordering::SeqCst), 0);
    // Nothing is left beside it either.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    // A crawl that runs replaces it, keeping its permissions.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&output, std::fs::Permissions::from_mode(0o640)).unwrap();
    }
    let out = weft()
        .args(["crawl", "-q", "--depth", "0", "-o"])
        .arg(&output)
        .arg(site.url("/chain/1"))
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let lines = json_lines(&std::fs::read_to_string(&output).unwrap());
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["title"], "Chain 1");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&output).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[tokio::test]
async fn credentials_in_seeds_are_never_printed() {
    let site = start(Spec::default()).await;
    let host = &site.base()["http://".len()..];
    let out = weft()
        .args(["crawl", "-q", "--depth", "0"])
        .arg(format!("http://user:secret@{host}/chain/1"))
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("Chain 1") && !stdout.contains("secret"),
        "{stdout}"
    );
    assert_eq!(
        site.seen
            .authorized
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );

    let out = weft()
        .args(["crawl", "-q", "http://user:secret@exa mple.com/"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("invalid seed url") && !stderr.contains("secret"),
        "{stderr}"
    );
}
