//! The data layer through scripts: CSV from a path and a URL, SQL over frames, SQLite, HTTP.

use cellar_engine::{ElementKind, Payload};
use cellar_tests::{run_once, texts};

/// Serves `body` at every path on 127.0.0.1 for `requests` requests; returns the base URL.
fn serve(body: &'static str, requests: usize) -> String {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("bind a loopback port");
    let url = format!("http://{}", server.server_addr());
    std::thread::spawn(move || {
        for request in server.incoming_requests().take(requests) {
            let response = if request.url() == "/missing.csv" {
                tiny_http::Response::from_string("not here").with_status_code(404)
            } else {
                tiny_http::Response::from_string(body)
            };
            let _ = request.respond(response);
        }
    });
    url
}

#[test]
fn read_csv_from_a_local_path() {
    let report = run_once(
        "let df = read_csv(\"samples/uber.csv\");\nwrite(df.height());\nwrite(df.columns());\ndataframe(df.head(3));\n",
    );
    assert!(!report.failed(), "{:?}", texts(&report));
    assert_eq!(texts(&report)[0], "5000");
    assert_eq!(
        texts(&report)[1],
        "[\"Date/Time\", \"Lat\", \"Lon\", \"Base\"]"
    );
    let (_, table) = report
        .elements()
        .find(|(_, e)| e.kind == ElementKind::Dataframe)
        .unwrap();
    let Payload::Frame(frame) = &table.payload else {
        panic!("a table carries its frame")
    };
    assert_eq!(frame.height(), 3);
}

#[test]
fn read_csv_from_a_url_on_loopback() {
    let url = serve("city,pop\nOslo,709000\nBergen,291000\n", 2);
    let report = run_once(&format!(
        "let df = read_csv(\"{url}/cities.csv\");\nwrite(df.height());\nwrite(df.sort(\"pop\").row(0).city);\nwrite(http_get(\"{url}/x\").len());\n"
    ));
    assert_eq!(texts(&report), ["2", "Bergen", "35"]);
}

#[test]
fn a_failed_download_names_the_url() {
    let url = serve("", 1);
    let report = run_once(&format!("read_csv(\"{url}/missing.csv\");\n"));
    let error = report.cells[0].error.as_ref().unwrap();
    assert!(
        error
            .message
            .contains(&format!("could not fetch {url}/missing.csv")),
        "{}",
        error.message
    );
    assert!(error.message.contains("404"), "{}", error.message);
}

#[test]
fn a_missing_file_names_the_path_and_where_it_looked() {
    let report = run_once("read_csv(\"samples/nope.csv\");\n");
    let message = &report.cells[0].error.as_ref().unwrap().message;
    assert!(
        message.contains("file not found: samples/nope.csv (looked in"),
        "{message}"
    );
}

#[test]
fn sql_over_frames() {
    let report = run_once(
        "let df = read_csv(\"samples/uber.csv\");\nlet counts = sql(\"SELECT Base, COUNT(*) AS n FROM uber GROUP BY Base ORDER BY Base\", #{uber: df});\nwrite(counts.height());\nwrite(counts.row(0).Base);\nlet total = 0;\nfor n in counts.column(\"n\") { total += n; }\nwrite(total);\n",
    );
    assert_eq!(texts(&report), ["5", "B02512", "5000"]);
}

#[test]
fn sqlite_query_and_execute() {
    let report = run_once(
        "let shop = sqlite_connect(\"samples/shop.db\");\nlet customers = shop.query(\"SELECT COUNT(*) AS n FROM customers\");\nwrite(customers.row(0).n);\nlet mem = sqlite_connect(\":memory:\");\nmem.execute(\"CREATE TABLE t (x INTEGER)\");\nwrite(mem.execute(\"INSERT INTO t VALUES (1), (2)\"));\nwrite(mem.query(\"SELECT SUM(x) AS s FROM t\").row(0).s);\nwrite(shop.is_open());\n",
    );
    assert_eq!(texts(&report), ["40", "2", "3", "true"]);
}

#[test]
fn frame_methods_from_scripts() {
    let report = run_once(
        "let df = read_csv(\"samples/uber.csv\");\nlet small = df.filter(\"Base = 'B02512' AND Lat > 40.7\").select([\"Lat\", \"Base\"]).sort(\"Lat\", true).head(2);\nwrite(small.columns());\nwrite(small.height());\nlet copy = small;\ncopy.drop_in_place(\"Lat\");\nwrite(copy.columns());\nwrite(small.columns());\nwrite(small.drop(\"Base\").columns());\n",
    );
    assert_eq!(
        texts(&report),
        [
            "[\"Lat\", \"Base\"]",
            "2",
            "[\"Base\"]",
            "[\"Lat\", \"Base\"]",
            "[\"Lat\"]"
        ]
    );
}

#[test]
fn charts_check_their_columns() {
    let report =
        run_once("let df = read_csv(\"samples/uber.csv\");\nline_chart(df, \"Lat\", \"Nope\");\n");
    let message = &report.cells[0].error.as_ref().unwrap().message;
    assert!(
        message.contains("no column \"Nope\"; the frame has Date/Time, Lat, Lon, Base"),
        "{message}"
    );
}
