//! The panels (bandwidth, visitors, 404s, static files, referrers, agents, hours, virtual hosts)
//! and the custom formats, through `analyze`: figures on small logs worked out by hand, and on a
//! 3,000-line Combined fixture whose figures were computed independently of weft (by
//! benches/scripts/goaccess_fixture.py, and checked against GoAccess 1.7 by
//! benches/scripts/goaccess_compare.sh).

use std::path::PathBuf;

use weft_core::context::Context;
use weft_logs::{
    Input, LogFormat, LogsError, Options, Panel, PanelSet, Panels, Report, TopTable, analyze,
};

fn bytes(name: &str, s: &str) -> Input {
    Input::Bytes {
        name: name.into(),
        data: s.as_bytes().to_vec(),
    }
}

async fn run(inputs: Vec<Input>, o: Options) -> Report {
    analyze(&Context::background(), inputs, o)
        .await
        .expect("analysis")
}

fn rows(t: &TopTable) -> Vec<(&str, u64, Option<u64>)> {
    t.rows
        .iter()
        .map(|r| (r.key.as_str(), r.requests, r.bytes))
        .collect()
}

const SMALL: &str = concat!(
    "1.1.1.1 - - [01/Mar/2024:09:15:00 +0000] \"GET /app.js HTTP/1.1\" 200 1000 \"https://www.google.com/search?q=x\" \"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36\"\n",
    "1.1.1.1 - - [01/Mar/2024:09:20:00 +0000] \"GET /index.php?x=1 HTTP/1.1\" 200 500 \"-\" \"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36\"\n",
    "2.2.2.2 - - [01/Mar/2024:10:00:00 +0000] \"GET /missing HTTP/1.1\" 404 100 \"https://www.google.com/other\" \"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)\"\n",
    "2.2.2.2 - - [01/Mar/2024:10:05:00 +0000] \"GET /missing HTTP/1.1\" 404 100 \"https://blog.example/a\" \"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)\"\n",
    "2.2.2.2 - - [02/Mar/2024:23:59:59 +0000] \"GET /logo.PNG HTTP/1.1\" 304 - \"-\" \"curl/8.4.0\"\n",
);

#[tokio::test]
async fn every_panel_on_a_small_combined_log() {
    let r = run(vec![bytes("a.log", SMALL)], Options::default()).await;
    let p = &r.panels;
    let bw = p.bandwidth.as_ref().expect("bandwidth");
    assert_eq!(
        (bw.total_bytes, bw.sized_requests),
        (1700, 5),
        "`-` is 0 bytes"
    );
    assert_eq!(
        rows(&bw.per_path),
        [
            ("/app.js", 1, Some(1000)),
            ("/index.php", 1, Some(500)),
            ("/missing", 2, Some(200)),
        ],
        "paths with no bytes are not listed"
    );
    assert_eq!(
        rows(&bw.per_client),
        [("1.1.1.1", 2, Some(1500)), ("2.2.2.2", 3, Some(200))]
    );
    let v = p.visitors.as_ref().expect("visitors");
    let days: Vec<(&str, u64)> = v
        .days
        .iter()
        .map(|d| (d.day.as_str(), d.visitors))
        .collect();
    // 1.1.1.1 with one agent on day 1; the 404s are not visits; curl on day 2.
    assert_eq!(days, [("2024-03-01", 1), ("2024-03-02", 1)]);
    assert!(v.exact && v.total == 2);
    assert_eq!(
        rows(p.not_found.as_ref().expect("404s")),
        [("/missing", 2, None)]
    );
    let s = p.static_files.as_ref().expect("static");
    assert_eq!(
        (
            s.static_requests,
            s.static_bytes,
            s.dynamic_requests,
            s.dynamic_bytes
        ),
        (2, 1000, 3, 700),
        "extensions compare without case"
    );
    assert_eq!(
        rows(p.referrers.as_ref().expect("referrers")),
        [
            ("https://blog.example/a", 1, None),
            ("https://www.google.com/other", 1, None),
            ("https://www.google.com/search?q=x", 1, None),
        ]
    );
    assert_eq!(
        rows(p.referring_sites.as_ref().expect("sites")),
        [("www.google.com", 2, None), ("blog.example", 1, None)]
    );
    let a = p.agents.as_ref().expect("agents");
    let names = |l: &[weft_logs::AgentCount]| -> Vec<(String, u64)> {
        l.iter().map(|c| (c.name.clone(), c.requests)).collect()
    };
    assert_eq!(
        names(&a.browsers),
        [
            ("Chrome".to_string(), 2),
            ("Googlebot".to_string(), 2),
            ("HTTP Library".to_string(), 1)
        ]
    );
    assert_eq!(names(&a.crawlers), [("Googlebot".to_string(), 2)]);
    assert!(
        a.systems
            .iter()
            .any(|c| c.name == "Windows 10" && c.requests == 2)
    );
    let hours = p.hours.as_ref().expect("hours");
    assert_eq!(
        (hours[9], hours[10], hours[23], hours.iter().sum::<u64>()),
        (2, 2, 1, 5)
    );
    assert!(p.vhosts.is_none());
    assert_eq!(p.unavailable, ["vhosts: no line named a virtual host"]);

    let text = r.to_string();
    for heading in [
        "bandwidth by path",
        "unique visitors per day",
        "not found (404)",
        "crawlers and bots",
        "referring sites",
    ] {
        assert!(text.contains(heading), "{heading}: {text}");
    }
    let json = serde_json::to_value(&r).expect("json");
    assert_eq!(json["panels"]["bandwidth"]["total_bytes"], 1700);
    assert_eq!(json["panels"]["not_found"]["rows"][0]["key"], "/missing");
    assert_eq!(json["panels"]["not_found"]["max_overcount"], 0);
}

#[tokio::test]
async fn panels_can_be_chosen_or_turned_off() {
    let mut o = Options::default();
    o.panels = PanelSet::none();
    let r = run(vec![bytes("a.log", SMALL)], o).await;
    assert!(r.panels.bandwidth.is_none() && r.panels.agents.is_none());
    assert!(r.panels.tables().is_empty() && r.panels.unavailable.is_empty());
    assert_eq!(r.requests, 5, "the core report is unchanged");

    let mut o = Options::default();
    o.panels = "not-found,vhosts".parse().expect("list");
    o.static_extensions = vec!["php".into()];
    let r = run(vec![bytes("a.log", SMALL)], o).await;
    assert!(r.panels.not_found.is_some() && r.panels.visitors.is_none());
    assert!(r.panels.static_files.is_none());
    assert_eq!(
        r.panels.unavailable,
        ["vhosts: no line named a virtual host"]
    );

    let mut o = Options::default();
    o.panels = PanelSet::none().with(Panel::Static);
    o.static_extensions = vec![".PHP".into()];
    let r = run(vec![bytes("a.log", SMALL)], o).await;
    assert_eq!(
        r.panels.static_files.as_ref().map(|s| s.static_requests),
        Some(1),
        "a configured list replaces the default"
    );
}

#[tokio::test]
async fn kv_and_json_lines_carry_the_panels_they_have_fields_for() {
    let kv = concat!(
        "2024-03-01 12:00:00 ip=1.2.3.4 host=shop.example path=/a.css status=200 bytes=300 ua=\"curl/8\" referer=\"https://x.example/p\" time=5ms\n",
        "2024-03-01 12:00:01 ip=1.2.3.5 host=api.example path=/b status=404 bytes=20 time=7ms\n",
    );
    let r = run(vec![bytes("app.log", kv)], Options::default()).await;
    let p = &r.panels;
    assert_eq!(p.bandwidth.as_ref().map(|b| b.total_bytes), Some(320));
    assert_eq!(
        rows(p.vhosts.as_ref().expect("vhosts")),
        [("api.example", 1, Some(20)), ("shop.example", 1, Some(300))]
    );
    assert_eq!(
        rows(p.referring_sites.as_ref().expect("sites")),
        [("x.example", 1, None)]
    );
    assert!(p.unavailable.is_empty(), "{:?}", p.unavailable);

    let json = "{\"ts\":\"2024-03-01T12:00:00Z\",\"ip\":\"::1\",\"path\":\"/j\",\"status\":200,\"bytes\":42,\"user_agent\":\"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)\"}\n";
    let r = run(vec![bytes("e.jsonl", json)], Options::default()).await;
    let p = &r.panels;
    assert_eq!(p.bandwidth.as_ref().map(|b| b.total_bytes), Some(42));
    let crawlers = &p.agents.as_ref().expect("agents").crawlers;
    assert_eq!(crawlers[0].name, "bingbot");

    // The usual kv line has none of the extra fields: those panels say why they are empty.
    let plain = "2024-03-01 12:00:00 ip=1.2.3.4 path=/a status=200 time=5ms\n";
    let r = run(vec![bytes("app.log", plain)], Options::default()).await;
    let names: Vec<&str> = r
        .panels
        .unavailable
        .iter()
        .map(|u| u.split(':').next().unwrap_or(""))
        .collect();
    assert_eq!(names, ["agents", "bandwidth", "referrers", "vhosts"]);
    assert!(r.panels.visitors.is_some() && r.panels.hours.is_some());
}

#[tokio::test]
async fn custom_formats_give_latency_and_virtual_hosts() {
    let nginx = concat!(
        "shop.example 10.0.0.1 [01/Mar/2024:12:00:00 +0000] \"GET /a HTTP/1.1\" 200 512 0.250\n",
        "api.example 10.0.0.2 [01/Mar/2024:12:00:01 +0000] \"GET /b HTTP/1.1\" 503 0 1.500\n",
    );
    let mut o = Options::default();
    o.set_log_format(
        "$host $remote_addr [$time_local] \"$request\" $status $bytes_sent $request_time",
    )
    .expect("compiles");
    let r = run(vec![bytes("access.log", nginx)], o).await;
    assert_eq!(r.inputs[0].format, Some(LogFormat::Custom));
    assert_eq!(
        (r.requests, r.malformed_lines, r.errors, r.slow),
        (2, 0, 1, 1)
    );
    let l = r.latency.as_ref().expect("latency from $request_time");
    assert_eq!((l.min_ms, l.max_ms), (250.0, 1500.0));
    assert_eq!(
        rows(r.panels.vhosts.as_ref().expect("vhosts")),
        [("api.example", 1, Some(0)), ("shop.example", 1, Some(512))]
    );

    let apache = "1.2.3.4 - - [01/Mar/2024:12:00:00 +0000] \"GET /x HTTP/1.1\" 200 5 \"-\" \"curl/8\" 1234\n";
    let mut o = Options::default();
    o.set_log_format("%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-agent}i\" %D")
        .expect("compiles");
    let r = run(vec![bytes("access.log", apache)], o).await;
    let l = r.latency.as_ref().expect("latency from %D");
    assert_eq!(l.max_ms, 1.234);

    let mut o = Options::default();
    let err = o
        .set_log_format("%h %t \"%r\" %>s %J")
        .expect_err("an unknown directive");
    assert!(
        matches!(&err, LogsError::Format(f) if f.offset() == 15),
        "{err}"
    );
}

#[tokio::test]
async fn top_tables_past_the_budget_state_their_bound() {
    // 40,000 distinct missing paths and one hot one, under the smallest budget.
    let mut log = String::new();
    for i in 0..40_000u32 {
        log.push_str(&format!(
            "10.0.{}.{} - - [01/Mar/2024:12:00:00 +0000] \"GET /scan/{i} HTTP/1.1\" 404 10 \"-\" \"-\"\n",
            i >> 8 & 255,
            i & 255
        ));
        if i % 20 == 0 {
            log.push_str("10.9.9.9 - - [01/Mar/2024:12:00:00 +0000] \"GET /hot HTTP/1.1\" 404 10 \"-\" \"-\"\n");
        }
    }
    let mut o = Options::default();
    o.memory_budget = weft_logs::MIN_MEMORY_BUDGET;
    o.top = 3;
    let r = run(vec![bytes("scan.log", &log)], o).await;
    let nf = r.panels.not_found.as_ref().expect("404s");
    assert!(
        nf.max_overcount > 0,
        "40,000 paths do not fit: the summary is used"
    );
    let hot = &nf.rows[0];
    assert_eq!(hot.key, "/hot");
    assert!(
        hot.requests >= 2000 && hot.requests - 2000 <= nf.max_overcount,
        "listed {} for 2000 true, bound {}",
        hot.requests,
        nf.max_overcount
    );
    let text = r.to_string();
    assert!(text.contains("figures are upper bounds"), "{text}");
}

/// Past the budget, the bandwidth tables rank by bytes, and every byte figure they list is
/// within their stated over-count of the exact bytes (never below them).
#[tokio::test]
async fn bandwidth_tables_past_the_budget_bound_the_bytes() {
    use std::collections::HashMap;
    let mut log = String::new();
    let (mut per_path, mut per_client) = (HashMap::new(), HashMap::new());
    let mut x = 0x9e37_79b9_u64;
    let mut line = |log: &mut String, client: String, path: String, size: u64| {
        log.push_str(&format!(
            "{client} - - [01/Mar/2024:12:00:00 +0000] \"GET {path} HTTP/1.1\" 200 {size} \"-\" \"-\"\n"
        ));
        *per_path.entry(path).or_insert(0u64) += size;
        *per_client.entry(client).or_insert(0u64) += size;
    };
    for i in 0..40_000u32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Sizes over four orders of magnitude, a few paths and clients repeated.
        let size = 1 + x % 10u64.pow(1 + (x >> 40) as u32 % 4);
        let client = format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255);
        line(&mut log, client, format!("/file/{}", x % 30_000), size);
        if i % 25 == 0 {
            line(&mut log, "10.9.9.9".into(), "/big.iso".into(), 50_000);
        }
    }
    let mut o = Options::default();
    o.memory_budget = weft_logs::MIN_MEMORY_BUDGET;
    o.top = 5;
    let r = run(vec![bytes("bw.log", &log)], o).await;
    let bw = r.panels.bandwidth.as_ref().expect("bandwidth panel");
    for (table, exact, hot) in [
        (&bw.per_path, &per_path, "/big.iso"),
        (&bw.per_client, &per_client, "10.9.9.9"),
    ] {
        assert!(
            table.max_overcount > 0,
            "30,000 paths and 40,000 clients do not fit: the summary is used"
        );
        assert_eq!(table.rows[0].key, hot);
        for row in &table.rows {
            let (listed, true_bytes) = (row.bytes.expect("bytes"), exact[&row.key]);
            assert!(
                true_bytes <= listed && listed - true_bytes <= table.max_overcount,
                "{}: listed {listed} for {true_bytes} true, bound {}",
                row.key,
                table.max_overcount
            );
        }
    }
}

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/combined-goaccess.log.gz")
}

/// The figures benches/scripts/goaccess_fixture.py computes from the fixture on its own, and
/// GoAccess 1.7 reports for it too.
#[tokio::test]
async fn the_goaccess_fixture_gives_the_independently_computed_figures() {
    let mut o = Options::default();
    o.top = 100;
    let r = run(vec![Input::Path(fixture())], o).await;
    assert_eq!((r.requests, r.malformed_lines), (3000, 3));
    let p: &Panels = &r.panels;
    assert_eq!(
        p.bandwidth.as_ref().map(|b| b.total_bytes),
        Some(64_403_050)
    );
    let v = p.visitors.as_ref().expect("visitors");
    let days: Vec<u64> = v.days.iter().map(|d| d.visitors).collect();
    assert_eq!(days, [284, 309, 291, 290, 17]);
    assert_eq!(v.total, 1191);
    let nf = p.not_found.as_ref().expect("404s");
    assert_eq!(nf.rows.iter().map(|r| r.requests).sum::<u64>(), 509);
    assert_eq!(nf.rows.len(), 17);
    let status: Vec<(u16, u64)> = r.status_codes.iter().map(|s| (s.status, s.count)).collect();
    assert_eq!(
        status,
        [
            (200, 1828),
            (301, 125),
            (304, 295),
            (403, 129),
            (404, 509),
            (500, 114)
        ]
    );
}

/// The live view reads custom formats and counts the panels as `analyze` does.
#[test]
fn the_follower_reads_custom_formats_and_counts_panels() {
    use std::io::Write;
    use weft_logs::follow::{Follower, Start};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("access.log");
    std::fs::write(&path, "").expect("create");
    let mut o = Options::default();
    o.set_log_format("nginx-timed").expect("preset");
    let mut follower = Follower::new([&path], o, Start::End).expect("follow");
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open");
    log.write_all(SMALL.replace("\"\n", "\" 0.250\n").as_bytes())
        .expect("append");
    assert_eq!(follower.poll().expect("poll"), 5);
    let r = follower.snapshot();
    assert_eq!(r.inputs[0].format, Some(LogFormat::Custom));
    assert_eq!(r.latency.as_ref().map(|l| l.count), Some(5));
    assert_eq!(
        r.panels.bandwidth.as_ref().map(|b| b.total_bytes),
        Some(1700)
    );
    assert_eq!(
        r.panels.not_found.as_ref().map(|t| rows(t)),
        Some(vec![("/missing", 2, None)])
    );
}
