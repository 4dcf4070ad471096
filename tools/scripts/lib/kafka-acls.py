"""Kafka's AclCommand arguments for the KafkaUsers of a Strimzi manifest
(deploy/local/kafka-users.yaml), one line per call: the cluster tier grants a
broker without Strimzi exactly the ACLs the reference cluster grants.

    python3 kafka-acls.py deploy/local/kafka-users.yaml
      --add --allow-principal User:orderflow-order --operation Write ... --topic orders
"""
import sys

import yaml

PATTERN = {"literal": "literal", "prefix": "prefixed"}

calls = {}
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if not doc or doc.get("kind") != "KafkaUser":
        continue
    user = doc["metadata"]["name"]
    for acl in doc["spec"]["authorization"]["acls"]:
        r = acl["resource"]
        ops = tuple(sorted(acl["operations"]))
        pattern = PATTERN[r.get("patternType", "literal")]
        calls.setdefault((user, r["type"], pattern, ops), []).append(r.get("name"))

for (user, kind, pattern, ops), names in calls.items():
    args = ["--add", "--allow-principal", f"User:{user}"]
    for op in ops:
        args += ["--operation", op]
    if kind == "cluster":
        args.append("--cluster")
    else:
        args += ["--resource-pattern-type", pattern]
        for name in names:
            args += [f"--{kind}", name]
    print(" ".join(args))
