//! Unit tests of `experiment::compose`: the file's table, the command lines
//! and environment compose runs with, `docker inspect`'s containers.

use super::*;

const SPEC: &str = r#"
files = ["docker-compose.yml", "deploy/compose.scale.yml"]
scale = { app = 2 }
free_ports = ["BALANCER_PORT", "POSTGRES_PORT"]
entry = "balancer:8080"
"#;

fn spec() -> ComposeSpec {
    toml::from_str(SPEC).unwrap()
}

#[test]
fn parses_and_validates() {
    let s = spec();
    s.validate().unwrap();
    assert_eq!(s.server, vec!["app"]);
    assert_eq!(s.server_replicas(), 2);
    assert_eq!(s.entry_parts().unwrap(), ("balancer", 8080));
    for (field, bad) in [
        ("entry", "balancer"),
        ("entry", ":8080"),
        ("program", "podman-compose"),
        ("ready_timeout", "soon"),
    ] {
        let t: String = SPEC
            .lines()
            .filter(|l| !l.starts_with(field))
            .map(|l| format!("{l}\n"))
            .collect();
        let b: ComposeSpec = toml::from_str(&format!("{field} = {bad:?}\n{t}")).unwrap();
        assert!(b.validate().is_err(), "{field} = {bad:?} accepted");
    }
    assert!(toml::from_str::<ComposeSpec>("files = []\nentry = \"b:1\"\nbogus = 1").is_err());
    let empty: ComposeSpec = toml::from_str("files = []\nentry = \"b:1\"").unwrap();
    assert!(empty.validate().is_err());
}

#[test]
fn builds_the_command_lines() {
    let s = spec();
    let files: Vec<PathBuf> = s.files.iter().map(|f| Path::new("/repo").join(f)).collect();
    let c = Commands::new(&["docker-compose".to_string()], "qb-two", &files);
    let base =
        "docker-compose -p qb-two -f /repo/docker-compose.yml -f /repo/deploy/compose.scale.yml";
    assert_eq!(
        c.up(&s.scale).join(" "),
        format!("{base} up -d --no-build --scale app=2")
    );
    assert_eq!(
        c.down().join(" "),
        format!("{base} down -v --remove-orphans -t 20")
    );
    let v2 = Commands::new(&["docker".into(), "compose".into()], "p", &files[..1]);
    assert_eq!(
        v2.ps().join(" "),
        "docker compose -p p -f /repo/docker-compose.yml ps -q"
    );
    let vars = BTreeMap::from([("PROCESSES".to_string(), "1".to_string())]);
    let env = compose_env(
        [
            ("PATH", "/bin"),
            ("PROCESSES", "8"),
            ("DOCKER_HOST", "unix:///x"),
            ("THREADS", "4"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string())),
        &vars,
    );
    assert_eq!(
        env.into_iter().collect::<Vec<_>>(),
        [
            ("DOCKER_HOST", "unix:///x"),
            ("PATH", "/bin"),
            ("PROCESSES", "1")
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
    );
}

#[test]
fn reads_containers_from_docker_inspect() {
    let json = r#"[
      {"State": {"Running": true, "Pid": 42},
       "Image": "sha256:0123456789abcdef0123",
       "Config": {"Image": "quizbench:latest", "Labels": {
         "com.docker.compose.service": "app", "com.docker.compose.container-number": "2"}},
       "HostConfig": {"CpusetCpus": "1", "NanoCpus": 500000000, "CpuQuota": 0, "CpuPeriod": 0, "Memory": 536870912},
       "NetworkSettings": {"Networks": {"qb_default": {"IPAddress": "172.18.0.5"}}}},
      {"State": {"Running": true, "Pid": 7},
       "Image": "sha256:fedcba",
       "Config": {"Image": "quizbench-haproxy:latest", "Labels": {
         "com.docker.compose.service": "balancer", "com.docker.compose.container-number": "1"}},
       "HostConfig": {"CpusetCpus": "", "NanoCpus": 0, "CpuQuota": 50000, "CpuPeriod": 100000, "Memory": 0},
       "NetworkSettings": {"Networks": {}}},
      {"State": {"Running": false, "Pid": 0}, "Config": {"Labels": {}}, "HostConfig": {}}
    ]"#;
    let cs = parse_inspect(json).unwrap();
    assert_eq!(cs.len(), 2, "the exited container is left out");
    assert_eq!(cs[0].key(), "app-2");
    assert_eq!(
        cs[0].limits,
        GroupLimits {
            cpus: Some("1".into()),
            quota: Some(0.5),
            memory_bytes: Some(512 << 20),
        }
    );
    assert_eq!(cs[1].limits.cpus, None, "an empty CpusetCpus: all CPUs");
    assert_eq!(cs[0].ip, Some("172.18.0.5".parse().unwrap()));
    assert_eq!(cs[1].ip, None);
    assert_eq!(
        cs[0].limits_text(),
        "cpuset 1, quota 0.5 CPU, memory 512 MiB, image quizbench:latest (0123456789ab)"
    );
    assert_eq!(
        cs[1].limits_text(),
        "all CPUs, quota 0.5 CPU, memory unlimited, image quizbench-haproxy:latest (fedcba)"
    );
    assert!(parse_inspect("{}").is_err());
}
