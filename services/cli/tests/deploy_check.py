"""Reads deploy/ for tests/deploy.rs: writes the TOML of each Shikko ConfigMap
to OUT/ROLE.toml, checks the shape of the Prometheus alert rules, and prints
every metric name the rules and the Grafana dashboard use (one per line)."""
import json
import re
import sys
from pathlib import Path

import yaml

root, out = Path(sys.argv[1]), Path(sys.argv[2])
roles = {}
for f in sorted((root / "k8s").glob("*.yaml")):
    for doc in yaml.safe_load_all(f.read_text()):
        if doc and doc.get("kind") == "ConfigMap" and doc["metadata"]["name"].startswith("shikko-"):
            for key, text in (doc.get("data") or {}).items():
                if key.endswith(".toml"):
                    role = key[: -len(".toml")]
                    (out / key).write_text(text)
                    roles[role] = key
print("roles:", " ".join(sorted(roles)))

metric = re.compile(r"\bshikko_[a-z0-9_]+")
names = set()
rules = yaml.safe_load((root / "prometheus" / "alerts.yml").read_text())
count = 0
for group in rules["groups"]:
    assert group["name"], "a group needs a name"
    for r in group["rules"]:
        count += 1
        for k in ("alert", "expr", "labels", "annotations"):
            assert k in r, f"rule {r.get('alert')} lacks {k}"
        assert r["labels"].get("severity") in ("page", "ticket"), r["alert"]
        assert r["annotations"].get("summary"), r["alert"]
        assert r["expr"].count("(") == r["expr"].count(")"), r["alert"]
        names.update(metric.findall(r["expr"]))
print("rules:", count)
scrape = yaml.safe_load((root / "prometheus" / "prometheus.yml").read_text())
assert "alerts.yml" in scrape["rule_files"]
dash = json.loads((root / "grafana" / "shikko.json").read_text())
ids = set()
for p in dash["panels"]:
    assert p["id"] not in ids, "panel ids are unique"
    ids.add(p["id"])
    for t in p["targets"]:
        names.update(metric.findall(t["expr"]))
print("panels:", len(dash["panels"]))
for n in sorted(names):
    print("metric", re.sub(r"_(bucket|sum|count)$", "", n))
