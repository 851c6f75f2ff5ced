//! One test per example of the seed (Streamlit's docs draft for `st.cache_data` and
//! `st.cache_resource`), translated to Rhai, named after the seed's section.
//!
//! Tests that check how a rerun's calls hit the function cache use
//! `Harness::functions_only`: with cell caching on, an unchanged cell is served whole and
//! its calls are not made at all (the outputs are the same; tests/tests/cells.rs).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cellar_engine::{ElementKind, WidgetValue};
use cellar_tests::{Harness, calls, errors, misses, texts};

/// Serves `body` on 127.0.0.1 and counts the requests it answers.
fn serve(body: &'static str) -> (String, Arc<AtomicUsize>) {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("bind a loopback port");
    let url = format!("http://{}", server.server_addr());
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    std::thread::spawn(move || {
        for request in server.incoming_requests().take(100) {
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = request.respond(tiny_http::Response::from_string(body));
        }
    });
    (url, count)
}

const UBER: &str = "Date/Time,Lat,Lon,Base\n4/1/2014 0:11:00,40.769,-73.9549,B02512\n4/1/2014 0:17:00,40.7267,-74.0345,B02512\n";

#[test]
fn minimal_example() {
    let nb = r#"
@cache_data
fn long_running_function(param1, param2) {
    param1 + param2
}
write(long_running_function(1, 2));
write(long_running_function(1, 2));
write(long_running_function(2, 2));
"#;
    let mut h = Harness::default();
    let report = h.run("A", nb);
    assert_eq!(texts(&report)[..], ["3", "3", "4"]);
    assert_eq!(
        calls(&report),
        [
            "long_running_function: miss (first run)",
            "long_running_function: hit",
            "long_running_function: miss (argument `param1` changed)"
        ]
    );
    // A rerun serves both from the cache.
    assert_eq!(misses(&h.run("A", nb), "long_running_function"), 0);
    // Editing the code makes old entries unreachable.
    let edited = nb.replace("param1 + param2", "param1 * param2");
    let report = h.run("A", &edited);
    assert_eq!(texts(&report)[..], ["2", "2", "4"]);
    assert_eq!(
        calls(&report)[0],
        "long_running_function: miss (code changed)"
    );
}

#[test]
fn st_cache_data_usage_load_data_from_a_url() {
    let (url, requests) = serve(UBER);
    let nb = format!(
        r#"
@cache_data
fn load_data(url) {{
    let df = read_csv(url);
    df
}}
let df = load_data("{url}/uber-rides-data1.csv");
dataframe(df);
button("Rerun");
"#
    );
    let mut h = Harness::default();
    let first = h.run("A", &nb);
    assert!(errors(&first).is_empty(), "{:?}", errors(&first));
    h.set_widget("A", "Rerun", WidgetValue::Bool(true));
    let second = h.run("A", &nb);
    assert_eq!(
        requests.load(Ordering::SeqCst),
        1,
        "the download happens on the first run only"
    );
    assert_eq!(
        texts(&second)[0],
        "2 rows × 4 columns (Date/Time, Lat, Lon, Base)"
    );
    assert_eq!(calls(&second), ["load_data: hit"]);
}

#[test]
fn st_cache_data_behavior_returns_a_copy() {
    // Mutating what @cache_data returned never changes the cache: every run gets a copy.
    let nb = r#"
@cache_data
fn load_data(path) { read_csv(path) }
let df = load_data("samples/uber.csv");
dataframe(df.head(1));
df.drop_in_place("Lat");
write(df.columns());
"#;
    let mut h = Harness::default();
    for _ in 0..3 {
        let report = h.run("A", nb);
        assert!(errors(&report).is_empty(), "{:?}", errors(&report));
        assert_eq!(
            texts(&report)[0],
            "1 rows × 4 columns (Date/Time, Lat, Lon, Base)"
        );
        assert_eq!(texts(&report)[1], r#"["Date/Time", "Lon", "Base"]"#);
    }
}

#[test]
fn examples_dataframe_transformations() {
    let nb = r#"
@cache_data
fn transform(df) {
    let df = df.select(["Lat", "Lon"]);
    sql("SELECT SUM(Lat) AS Lat, SUM(Lon) AS Lon FROM t", #{t: df})
}
let raw = read_csv("samples/uber.csv");
let rows = slider("Rows", 10, 5000, 100);
let sums = transform(raw.head(rows));
write(sums.height());
"#;
    let mut h = Harness::functions_only(None);
    h.run("A", nb);
    assert_eq!(
        calls(&h.run("A", nb)),
        ["transform: hit"],
        "same frame content: a hit"
    );
    h.set_widget("A", "Rows", WidgetValue::Int(200));
    assert_eq!(
        calls(&h.run("A", nb)),
        ["transform: miss (argument `df` changed)"]
    );
}

#[test]
fn examples_array_computations() {
    let nb = r#"
@cache_data
fn add(arr1, arr2) {
    let out = [];
    for i in 0..arr1.len() { out.push(arr1[i] + arr2[i]); }
    out
}
write(add([1, 2, 3], [10, 20, 30]));
"#;
    let mut h = Harness::functions_only(None);
    assert_eq!(texts(&h.run("A", nb)), ["[11, 22, 33]"]);
    assert_eq!(calls(&h.run("A", nb)), ["add: hit"]);
}

#[test]
fn examples_database_queries() {
    // The connection is excluded from the key with a leading underscore.
    let nb = r#"
let connection = sqlite_connect("samples/shop.db");
@cache_data(ttl = 3600)
fn run_query(_connection) {
    _connection.query("SELECT * FROM customers")
}
let rows = run_query(connection);
write(rows.height());
"#;
    let mut h = Harness::default();
    assert_eq!(texts(&h.run("A", nb)), ["40"]);
    assert_eq!(calls(&h.run("A", nb)), ["run_query: hit"]);
    h.clock.advance(Duration::from_secs(3600));
    assert_eq!(
        calls(&h.run("A", nb)),
        ["run_query: miss (expired (ttl 1 h))"]
    );
}

#[test]
fn examples_api_calls() {
    let (url, requests) = serve(r#"{"userId": 1, "id": 1, "title": "sunt aut facere"}"#);
    let nb = format!(
        r#"
@cache_data
fn api_call() {{
    http_get("{url}/posts/1")
}}
json(api_call());
"#
    );
    let mut h = Harness::default();
    h.run("A", &nb);
    h.run("B", &nb);
    assert_eq!(
        requests.load(Ordering::SeqCst),
        1,
        "one request for both sessions"
    );
}

#[test]
fn examples_running_ml_models_inference() {
    let nb = r#"
fn model(inputs) { inputs.map(|x| x * 0.5 + 1.0) }
@cache_data
fn run_model(inputs) { model(inputs) }
write(run_model([1.0, 2.0]));
"#;
    let mut h = Harness::functions_only(None);
    assert_eq!(texts(&h.run("A", nb)), ["[1.5, 2.0]"]);
    assert_eq!(calls(&h.run("A", nb)), ["run_model: hit"]);
    // Editing a helper the cached function calls changes its key too.
    let edited = nb.replace("x * 0.5 + 1.0", "x * 0.5 + 2.0");
    let report = h.run("A", &edited);
    assert_eq!(texts(&report), ["[2.5, 3.0]"]);
    assert_eq!(calls(&report), ["run_model: miss (code changed)"]);
}

#[test]
fn st_cache_resource_usage_load_model_once() {
    let nb = r#"
@cache_resource
fn load_model() {
    #{positive: ["love", "great"], negative: ["hate"]}
}
let model = load_model();
let query = text_input("Your query", "I love Cellar!");
if query != "" {
    let label = if model.positive.some(|w| query.contains(w)) { "POSITIVE" } else { "NEGATIVE" };
    write(#{label: label});
}
"#;
    let mut h = Harness::default();
    let a = h.run("A", nb);
    assert_eq!(texts(&a).last().unwrap(), r#"#{"label": "POSITIVE"}"#);
    h.set_widget("B", "Your query", WidgetValue::Text("I hate bugs".into()));
    let b = h.run("B", nb);
    assert_eq!(texts(&b).last().unwrap(), r#"#{"label": "NEGATIVE"}"#);
    assert_eq!(
        misses(&a, "load_model") + misses(&b, "load_model"),
        1,
        "loaded once for all sessions"
    );
}

#[test]
fn examples_database_connections() {
    let nb = r#"
@cache_resource
fn init_connection() {
    sqlite_connect("samples/shop.db")
}
let conn = init_connection();
write(conn.query("SELECT COUNT(*) AS n FROM orders").row(0).n);
"#;
    let mut h = Harness::functions_only(None);
    let a = h.run("A", nb);
    let b = h.run("B", nb);
    assert_eq!(texts(&a), ["500"]);
    assert_eq!(texts(&b), ["500"]);
    assert_eq!(calls(&b), ["init_connection: hit"]);
}

#[test]
fn deciding_which_caching_decorator_to_use() {
    // A connection is not data: @cache_data refuses it and points at @cache_resource.
    let nb = r#"
@cache_data
fn init_connection() { sqlite_connect("samples/shop.db") }
init_connection();
"#;
    let report = Harness::default().run("A", nb);
    assert_eq!(
        errors(&report),
        [
            "`init_connection` returned a SqliteConnection (a database connection), which @cache_data cannot store: it keeps only data (numbers, strings, arrays, maps, DataFrames) and hands out copies. Use @cache_resource for connections, models and other shared objects"
        ]
    );
}

#[test]
fn controlling_cache_size_and_duration_ttl() {
    let nb = r#"
@cache_data(ttl = 3600)
fn get_api_data() { now() }
write(get_api_data());
"#;
    let mut h = Harness::default();
    let first = texts(&h.run("A", nb));
    h.clock.advance(Duration::from_secs(3599));
    assert_eq!(texts(&h.run("A", nb)), first, "still fresh");
    h.clock.advance(Duration::from_secs(1));
    let report = h.run("A", nb);
    assert_eq!(calls(&report), ["get_api_data: miss (expired (ttl 1 h))"]);
    let events = h.runtime.cache().events_since(0);
    assert!(
        events
            .iter()
            .any(|e| e.to_string().starts_with("evicted get_api_data")
                && e.to_string().ends_with(": ttl"))
    );
}

#[test]
fn controlling_cache_size_and_duration_max_entries() {
    let nb = r#"
@cache_data(max_entries = 1000)
fn get_large_array(seed) {
    let arr = [];
    for i in 0..10 { arr.push(seed * 10 + i); }
    arr
}
for seed in 0..1001 { get_large_array(seed); }
write(get_large_array(1000).len());
write(get_large_array(0)[0]);
"#;
    let mut h = Harness::functions_only(None);
    let report = h.run("A", nb);
    assert_eq!(texts(&report), ["10", "0"]);
    // Seed 0 was the least recently used when seed 1000 came in: it was evicted, then recomputed.
    assert_eq!(
        calls(&report).last().unwrap(),
        "get_large_array: miss (evicted (max_entries))"
    );
    let stats = h.runtime.cache().stats();
    assert_eq!(stats[0].entries, 1000);
}

#[test]
fn customizing_the_spinner() {
    let nb = r#"
@cache_data(show_spinner = false)
fn quiet() { 1 }
@cache_data(show_spinner = "Fetching data from API...")
fn custom() { 2 }
@cache_data
fn default_text() { 3 }
quiet(); custom(); default_text();
"#;
    let mut h = Harness::default();
    let report = h.run("A", nb);
    let spinners: Vec<String> = report
        .elements()
        .filter(|(_, e)| e.kind == ElementKind::Spinner)
        .map(|(_, e)| e.text.clone())
        .collect();
    assert_eq!(
        spinners,
        ["Fetching data from API...", "Running `default_text(...)`."]
    );
    let again = h.run("A", nb);
    assert!(
        again
            .elements()
            .all(|(_, e)| e.kind != ElementKind::Spinner),
        "no spinner on a hit"
    );
}

#[test]
fn excluding_input_parameters() {
    let nb = r#"
@cache_data
fn fetch_data(_db_connection, num_rows) {
    _db_connection.query(`SELECT * FROM orders LIMIT ${num_rows}`)
}
let connection = sqlite_connect("samples/shop.db");
let d = fetch_data(connection, 10);
write(d.height());
let other = sqlite_connect("samples/shop.db");
write(fetch_data(other, 10).height());
write(fetch_data(other, 20).height());
"#;
    let mut h = Harness::default();
    let report = h.run("A", nb);
    assert_eq!(texts(&report), ["10", "10", "20"]);
    assert_eq!(
        calls(&report),
        [
            "fetch_data: miss (first run)",
            "fetch_data: hit",
            "fetch_data: miss (argument `num_rows` changed)"
        ]
    );
    // Without the underscore the connection cannot be hashed, and the error says what to do.
    let unhashed = nb.replace("_db_connection", "db_connection");
    let report = Harness::default().run("A", &unhashed);
    assert_eq!(
        errors(&report)[0],
        "cannot hash argument `db_connection` of `fetch_data`: it is a SqliteConnection (a database connection). Rename the parameter to `_db_connection` to leave it out of the cache key"
    );
    let error = report.cells[0].error.as_ref().unwrap();
    assert_eq!(error.line, Some(7), "the error points at the call");
}

#[test]
fn using_streamlit_commands_in_cached_functions_static_elements() {
    let nb = r#"
@cache_data
fn show_data() {
    header("Data analysis");
    let data = read_csv("samples/uber.csv").head(20);
    success("Fetched data from API!");
    write("Here is a plot of the data:");
    line_chart(data, "Lon", "Lat");
    write("And here is the raw data:");
    dataframe(data);
    data.height()
}
write(show_data());
"#;
    let mut h = Harness::functions_only(None);
    let first = h.run("A", nb);
    let second = h.run("A", nb);
    assert_eq!(calls(&second), ["show_data: hit"]);
    let kinds = |r: &cellar_engine::RunReport| -> Vec<&'static str> {
        r.elements()
            .filter(|(_, e)| e.kind != ElementKind::Spinner)
            .map(|(_, e)| e.kind.name())
            .collect()
    };
    assert_eq!(
        kinds(&first),
        [
            "header",
            "success",
            "write",
            "line_chart",
            "write",
            "dataframe",
            "write"
        ]
    );
    assert_eq!(kinds(&second), kinds(&first), "replayed in order on a hit");
    assert_eq!(texts(&second).last().unwrap(), "20");
}

#[test]
fn using_streamlit_commands_in_cached_functions_input_widgets() {
    let refused = r#"
@cache_data
fn get_data() {
    let num_rows = slider("Number of rows to get", 1, 100, 10);
    num_rows * 2
}
write(get_data());
"#;
    let report = Harness::functions_only(None).run("A", refused);
    assert!(
        errors(&report)[0].contains("add experimental_allow_widgets = true to its @cache_data"),
        "{:?}",
        errors(&report)
    );
    let allowed = refused.replace(
        "@cache_data",
        "@cache_data(experimental_allow_widgets = true)",
    );
    let mut h = Harness::functions_only(None);
    assert_eq!(texts(&h.run("A", &allowed)).last().unwrap(), "20");
    let hit = h.run("A", &allowed);
    assert_eq!(calls(&hit), ["get_data: hit"]);
    assert_eq!(
        texts(&hit),
        ["Number of rows to get = 10", "20"],
        "the widget is replayed"
    );
    h.set_widget("A", "Number of rows to get", WidgetValue::Int(30));
    let changed = h.run("A", &allowed);
    assert_eq!(texts(&changed).last().unwrap(), "60");
    assert_eq!(
        calls(&changed),
        ["get_data: miss (widget `Number of rows to get` changed)"]
    );
    h.set_widget("A", "Number of rows to get", WidgetValue::Int(10));
    assert_eq!(
        calls(&h.run("A", &allowed)),
        ["get_data: hit"],
        "each widget value has its entry"
    );
}

#[test]
fn mutation_and_concurrency_issues_cache_data_list() {
    let nb = r#"
@cache_data
fn create_list() {
    let l = [1, 2, 3];
    l
}
let l = create_list();
l[0] = 2;
write(l[0]);
"#;
    let mut h = Harness::default();
    for _ in 0..3 {
        assert_eq!(texts(&h.run("A", nb)), ["2"]);
    }
    assert_eq!(texts(&h.run("A", "@cache_data\nfn create_list() {\n    let l = [1, 2, 3];\n    l\n}\nwrite(create_list()[0]);\n")), ["1"]);
}

#[test]
fn mutation_and_concurrency_issues_concurrency_issues() {
    // The seed's list example: users A, B, A see 2, 3, 4.
    let nb = r#"
@cache_resource
fn create_list() {
    let l = [1, 2, 3];
    l
}
let l = create_list();
let first_list_value = l[0];
l[0] = first_list_value + 1;
write("l[0] is:", l[0]);
"#;
    let mut h = Harness::default();
    assert_eq!(texts(&h.run("A", nb)), ["l[0] is: 2"]);
    assert_eq!(texts(&h.run("B", nb)), ["l[0] is: 3"]);
    assert_eq!(texts(&h.run("A", nb)), ["l[0] is: 4"]);
}

#[test]
fn copying_behavior_cache_resource_mutates_the_cached_frame() {
    let nb = r#"
@cache_resource
fn load_data(url) {
    read_csv(url)
}
let df = load_data("samples/uber.csv");
dataframe(df.head(1));
df.drop_in_place("Lat");
button("Rerun");
"#;
    let mut h = Harness::default();
    let first = h.run("A", nb);
    assert_eq!(
        texts(&first)[0],
        "1 rows × 4 columns (Date/Time, Lat, Lon, Base)"
    );
    // The drop went into the one shared frame: the rerun sees it, and dropping again fails.
    let second = h.run("A", nb);
    assert_eq!(
        texts(&second)[0],
        "1 rows × 3 columns (Date/Time, Lon, Base)"
    );
    assert!(
        errors(&second)[0].contains("no column \"Lat\""),
        "{:?}",
        errors(&second)
    );
}

#[test]
fn migrating_from_st_cache() {
    let nb = r#"
@cache
fn load() { [1, 2, 3] }
@cache(allow_output_mutation = true)
fn connect() { sqlite_connect("samples/shop.db") }
write(load()[0]);
write(connect().is_open());
"#;
    let mut h = Harness::default();
    let report = h.run("A", nb);
    let warnings: Vec<String> = report
        .elements()
        .filter(|(_, e)| e.kind == ElementKind::Warning)
        .map(|(_, e)| e.text.clone())
        .collect();
    assert_eq!(
        warnings,
        [
            "@cache is deprecated; use @cache_data: `load` returns data (array of 3), served as a copy on every call",
            "@cache is deprecated; use @cache_resource: `connect` returns a shared object (SqliteConnection (a database connection)) that callers may mutate",
        ]
    );
    assert_eq!(
        texts(&report)
            .iter()
            .filter(|t| !t.starts_with("@cache"))
            .collect::<Vec<_>>(),
        ["1", "true"]
    );
    // The new annotations refuse the old parameters with a migration message.
    let report = h.run(
        "A",
        "@cache_data(allow_output_mutation = true)\nfn f() { 1 }\n",
    );
    let error = report.cells[0].error.as_ref().unwrap();
    assert_eq!(error.line, Some(1));
    assert!(
        error.message.contains("use @cache_resource"),
        "{}",
        error.message
    );
    let report = h.run(
        "A",
        "@cache_resource(suppress_st_warning = true)\nfn f() { 1 }\n",
    );
    assert!(errors(&report)[0].contains("does not take suppress_st_warning"));
    let report = h.run("A", "@cache_data(hash_funcs = 1)\nfn f() { 1 }\n");
    assert!(errors(&report)[0].contains("prefix its name with _"));
}

#[test]
fn validating_cached_resources() {
    let nb = r#"
fn still_open(conn) { conn.is_open() }
@cache_resource(validate = "still_open")
fn init_connection() { sqlite_connect("samples/shop.db") }
init_connection();
"#;
    let mut h = Harness::functions_only(None);
    h.run("A", nb);
    assert_eq!(calls(&h.run("A", nb)), ["init_connection: hit"]);
    let nb_invalid = nb.replace("conn.is_open()", "false");
    let report = h.run("A", &nb_invalid);
    assert_eq!(
        calls(&report),
        ["init_connection: miss (evicted (validate failed))"]
    );
}

#[test]
fn caching_simple_types() {
    let nb = r#"
@cache_data
fn cache_string() { "Hello World!" }
@cache_data
fn cache_list() { [1, 2, 3] }
@cache_data
fn cache_dict() { #{a: 1, b: 2, c: 3} }
@cache_data
fn cache_tuple() { [1, 2, 3] }
@cache_data
fn cache_int() { 1 }
write(cache_string());
write(cache_list());
write(cache_dict());
write(cache_tuple());
write(cache_int());
"#;
    let mut h = Harness::default();
    let expected = [
        "Hello World!",
        "[1, 2, 3]",
        r#"#{"a": 1, "b": 2, "c": 3}"#,
        "[1, 2, 3]",
        "1",
    ];
    assert_eq!(texts(&h.run("A", nb)), expected);
    let again = h.run("A", nb);
    assert_eq!(texts(&again), expected);
    assert!(
        calls(&again).iter().all(|c| c.ends_with(": hit")),
        "{:?}",
        calls(&again)
    );
}

#[test]
fn caching_a_random_computation() {
    // The seed's `np.random.randn(...) * 2 + 1`: a random result, cached, is the same on rerun.
    let nb = r#"
@cache_data
fn load_data() {
    let data = [];
    for i in 0..5 { data.push((now() * 1000.0 + i) % 7.0 * 2.0 + 1.0); }
    data
}
write(load_data());
"#;
    let mut h = Harness::default();
    let first = texts(&h.run("A", nb));
    h.clock.advance(Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(texts(&h.run("A", nb)), first);
}
