#!/usr/bin/env bash
# Validates the Kubernetes recipe in deploy/kubernetes/ offline, in three layers:
#
#  1. Schema: every manifest, its ${...} placeholders filled with sample values, against the
#     Kubernetes JSON schemas of the oldest and newest versions the recipe is meant for, in
#     strict mode (an unknown or misspelt field fails). The validator is the PyPI package
#     kubernetes-validate, which ships the schemas: nothing is downloaded while validating.
#  2. Recipe: what no schema knows. The shard Job is Indexed, never retried, its --shard N
#     equals completions and parallelism, the merge Job lists exactly shards 0..N-1 where the
#     shards write, every $(VAR) a container uses is defined in its env (the kubelet leaves an
#     undefined one as literal text), label selectors select something, secret references name
#     a key the templates define, the results claim is ReadWriteMany.
#  3. Render: each kustomization.yaml through `kubectl kustomize` (when kubectl is installed),
#     its output validated as in 1.
#
# Then it proves the checks bite: it breaks copies of the manifests in known ways (a misspelt
# field, completionMode: Sideways, an undefined $(VAR), ...) and fails unless every copy is
# refused.
#
#   scripts/validate-k8s.sh            validate deploy/kubernetes/, then the self-test
#   scripts/validate-k8s.sh DIR        validate another directory (no self-test)
#
# The validator is installed once into target/k8s-validate-venv (PyPI must be reachable then).
# Exit status: 0 valid, 1 invalid (or a broken copy was let through), 2 the validator could not
# be installed or run.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
validator_version=1.37.0
# 1.29: the first release with backoffLimitPerIndex on by default, which the shard Job needs.
k8s_versions=(1.29.0 1.37.0)
venv="$repo/target/k8s-validate-venv"
py="$venv/bin/python"

log() { echo "validate-k8s: $*" >&2; }
die_setup() {
  log "$*"
  exit 2
}

ensure_validator() {
  if [ -x "$venv/bin/kubernetes-validate" ] &&
    [ "$("$venv/bin/kubernetes-validate" --version 2>/dev/null)" = "$validator_version" ]; then
    return
  fi
  log "installing kubernetes-validate $validator_version into ${venv#"$repo"/} (once)"
  command -v python3 >/dev/null ||
    die_setup "python3 is needed to install the validator (apt-get install python3 python3-venv)"
  rm -rf "$venv"
  python3 -m venv "$venv" >/dev/null 2>&1 ||
    die_setup "cannot create a Python virtual environment in $venv (apt-get install python3-venv)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "kubernetes-validate==$validator_version" >&2 ||
    die_setup "cannot install kubernetes-validate $validator_version from PyPI (above); it is \
needed once, then it is kept in $venv"
  [ "$("$venv/bin/kubernetes-validate" --version 2>/dev/null)" = "$validator_version" ] ||
    die_setup "kubernetes-validate was installed but does not run (above)"
}

# The placeholders docs/kubernetes.md substitutes at apply time, with sample values. Any other
# ${...} left in a manifest is an error (layer 2): nothing would substitute it.
fill_placeholders() { # SRC DEST [SRC DEST]...
  "$py" - "$@" <<'PY'
import sys
values = {
    "FLASHSALE_IMAGE": "registry.example.com/flashsale:validate",
    "TARGET_URL": "http://flashsale-server:8080",
    "CAMPAIGN": "validate-20300101",
    "DOORS_OPEN_AT": "2030-01-01T00:00:00Z",
}
paths = sys.argv[1:]
for src, dest in zip(paths[::2], paths[1::2]):
    text = open(src, encoding="utf-8").read()
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    open(dest, "w", encoding="utf-8").write(text)
PY
}

# Layer 1 on the given files, named relative to DIR in the messages. Any WARN counts as a
# failure: kubernetes-validate only warns (and exits 0) when it has no schema for a
# kind/apiVersion, e.g. a misspelt apiVersion.
schema_check() { # DIR FILE...
  local dir=$1 out rc=0 version versions=()
  shift
  for version in "${k8s_versions[@]}"; do versions+=(-k "$version"); done
  out=$(cd "$dir" && "$venv/bin/kubernetes-validate" --strict --quiet "${versions[@]}" "$@" 2>&1) ||
    rc=$?
  if [ -n "$out" ]; then
    printf '%s\n' "$out"
  fi
  if [ "$rc" -ne 0 ] || grep -qE '^(WARN|ERROR|FATAL)' <<<"$out"; then
    return 1
  fi
}

# Layer 2: the recipe's own rules, on the filled copies.
recipe_check() { # FILLED_DIR ORIGINAL_DIR
  "$py" - "$1" "$2" <<'PY'
import os, re, sys
import yaml

filled_root, original_root = sys.argv[1], sys.argv[2]
problems = []
def fail(where, message):
    problems.append(f"RECIPE {where}: {message}")

docs = []  # (relative path, object)
kustomizations = []
for dirpath, _, names in os.walk(filled_root):
    for name in sorted(names):
        if not name.endswith((".yaml", ".yml")):
            continue
        path = os.path.join(dirpath, name)
        rel = os.path.relpath(path, filled_root)
        with open(path, encoding="utf-8") as f:
            for obj in yaml.safe_load_all(f):
                if not obj:
                    continue
                if name in ("kustomization.yaml", "kustomization.yml"):
                    kustomizations.append((rel, obj))
                else:
                    docs.append((rel, obj))

def strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)

def find(kind, name):
    return [(rel, o) for rel, o in docs if o.get("kind") == kind
            and (o.get("metadata") or {}).get("name") == name]

def pod_spec(obj):
    kind = obj.get("kind")
    if kind == "Pod":
        return obj.get("spec") or {}
    if kind in ("Job", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"):
        return ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    return None

def pod_labels(obj):
    if obj.get("kind") == "Pod":
        return (obj.get("metadata") or {}).get("labels") or {}
    return (((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}

def name_of(rel, obj):
    return f"{rel} ({obj.get('kind')}/{(obj.get('metadata') or {}).get('name')})"

# A placeholder that is a whole value loses its quotes when `kubectl kustomize` re-emits the
# YAML; filled in afterwards, a date becomes a YAML timestamp and digits a number. Only the
# image, always a string, may stand alone.
for dirpath, _, names in os.walk(original_root):
    for name in sorted(names):
        if not name.endswith((".yaml", ".yml")):
            continue
        path = os.path.join(dirpath, name)
        with open(path, encoding="utf-8") as f:
            for obj in yaml.safe_load_all(f):
                for s in strings(obj or {}):
                    m = re.fullmatch(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", s)
                    if m and m.group(1) != "FLASHSALE_IMAGE":
                        fail(os.path.relpath(path, original_root), f"{s} is a whole value: "
                             "put it inside a longer string (e.g. --flag=${...}), or it loses "
                             "its quotes in a kustomize render")

# Placeholders nobody substitutes.
for rel, obj in docs:
    for s in strings(obj):
        for leftover in re.findall(r"\$\{[^}]*\}", s):
            fail(name_of(rel, obj), f"{leftover} is not one of the placeholders the recipe "
                 "substitutes (FLASHSALE_IMAGE, TARGET_URL, CAMPAIGN, DOORS_OPEN_AT)")

# One namespace for everything, the Namespace object's.
namespaces = [o["metadata"]["name"] for _, o in docs if o.get("kind") == "Namespace"]
for rel, obj in docs:
    if obj.get("kind") == "Namespace":
        continue
    ns = (obj.get("metadata") or {}).get("namespace")
    if ns not in namespaces:
        fail(name_of(rel, obj), f"metadata.namespace is {ns!r}, not the recipe's namespace "
             f"({', '.join(namespaces) or 'no Namespace object found'})")

# $(VAR) in a container's command, args and env values must be defined in its env: the kubelet
# leaves an undefined reference as literal text, which then reaches the program as an argument.
var_ref = re.compile(r"(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
secrets = {(o["metadata"]["name"]): (o.get("stringData") or {}) | (o.get("data") or {})
           for _, o in docs if o.get("kind") == "Secret"}
claims = {o["metadata"]["name"]: o for _, o in docs if o.get("kind") == "PersistentVolumeClaim"}
all_pod_labels = [pod_labels(o) for _, o in docs if pod_spec(o) is not None]
for rel, obj in docs:
    spec = pod_spec(obj)
    if spec is None:
        continue
    where = name_of(rel, obj)
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        defined = set()
        for e in c.get("env") or []:
            for ref in var_ref.findall(str(e.get("value", ""))):
                if ref not in defined:
                    fail(where, f"container {c['name']}: env {e['name']} uses $({ref}), which is "
                         "not defined before it")
            defined.add(e["name"])
            key_ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if key_ref:
                data = secrets.get(key_ref["name"])
                if data is None:
                    fail(where, f"container {c['name']}: env {e['name']} names Secret "
                         f"{key_ref['name']}, which no manifest or template here defines")
                elif key_ref["key"] not in data:
                    fail(where, f"container {c['name']}: env {e['name']} names key "
                         f"{key_ref['key']} of Secret {key_ref['name']}, which has "
                         f"{sorted(data)}")
        for s in (c.get("command") or []) + (c.get("args") or []):
            for ref in var_ref.findall(s):
                if ref not in defined:
                    fail(where, f"container {c['name']} uses $({ref}), which its env does not "
                         "define: the kubelet would pass it on as literal text")
    for v in spec.get("volumes") or []:
        claim = (v.get("persistentVolumeClaim") or {}).get("claimName")
        if claim is not None and claim not in claims:
            fail(where, f"volume {v['name']} names claim {claim}, which no manifest defines")
    # An affinity term whose selector matches no pod of the recipe is silently inert.
    anti = ((spec.get("affinity") or {}).get("podAntiAffinity") or {})
    for term in anti.get("preferredDuringSchedulingIgnoredDuringExecution") or []:
        wanted = ((term.get("podAffinityTerm") or {}).get("labelSelector") or {}).get("matchLabels") or {}
        if not any(all(labels.get(k) == v for k, v in wanted.items()) for labels in all_pod_labels):
            fail(where, f"podAntiAffinity selector {wanted} matches no pod of the recipe")

for name, claim in claims.items():
    if "ReadWriteMany" not in ((claim.get("spec") or {}).get("accessModes") or []):
        fail(f"PersistentVolumeClaim/{name}", "must be ReadWriteMany: the shards and the merge "
             "mount it at once, from different nodes")

# Services select the pods they front.
for rel, obj in docs:
    if obj.get("kind") != "Service":
        continue
    selector = (obj.get("spec") or {}).get("selector") or {}
    if not any(all(labels.get(k) == v for k, v in selector.items()) for labels in all_pod_labels):
        fail(name_of(rel, obj), f"selector {selector} matches no pod of the recipe")

# The shard Job and the merge Job agree.
shards = find("Job", "flashsale-shards")
merges = find("Job", "flashsale-merge")
if len(shards) != 1 or len(merges) != 1:
    fail("recipe", "expected one Job flashsale-shards and one Job flashsale-merge, found "
         f"{len(shards)} and {len(merges)}")
else:
    rel, job = shards[0]
    where = name_of(rel, job)
    spec = job.get("spec") or {}
    n = spec.get("completions")
    if spec.get("completionMode") != "Indexed":
        fail(where, f"completionMode is {spec.get('completionMode')!r}: it must be Indexed, so "
             "each pod gets a distinct shard index (JOB_COMPLETION_INDEX)")
    if not isinstance(n, int) or n < 1:
        fail(where, f"completions is {n!r}: it must be N, the number of shards")
    if spec.get("parallelism") != n:
        fail(where, f"parallelism ({spec.get('parallelism')!r}) must equal completions ({n!r}): "
             "every shard fires at the same doors-open instant, none may wait for a slot")
    if not (spec.get("backoffLimitPerIndex") == 0 or spec.get("backoffLimit") == 0):
        fail(where, "a failed shard must not be retried (backoffLimitPerIndex: 0, or "
             "backoffLimit: 0): a retry fires its buyers a second time into the same sale")
    pspec = pod_spec(job)
    if pspec.get("restartPolicy") != "Never":
        fail(where, f"restartPolicy is {pspec.get('restartPolicy')!r}: it must be Never "
             "(OnFailure restarts the shard in place and fires its buyers again)")
    containers = pspec.get("containers") or []
    runners = [c for c in containers if "run" in (c.get("args") or [])[:1]]
    if len(runners) != 1:
        fail(where, "expected one container whose args start with `run`")
    else:
        c = runners[0]
        args = c.get("args") or []
        index_env = [e for e in c.get("env") or [] if e.get("name") == "JOB_COMPLETION_INDEX"]
        path = ((index_env[0].get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath") if index_env else None
        allowed = {f"metadata.{where_}['batch.kubernetes.io/job-completion-index']"
                   for where_ in ("annotations", "labels")}
        if path not in allowed:
            fail(where, "the shard container must define JOB_COMPLETION_INDEX from the fieldRef "
                 "metadata.annotations['batch.kubernetes.io/job-completion-index'] "
                 f"(found {path!r})")
        def option(flag):
            for i, a in enumerate(args):
                if a.startswith(flag + "="):
                    return a.split("=", 1)[1]
                if a == flag and i + 1 < len(args):
                    return args[i + 1]
            return None
        shard = option("--shard")
        if shard != f"$(JOB_COMPLETION_INDEX)/{n}":
            fail(where, f"--shard is {shard!r}: it must be $(JOB_COMPLETION_INDEX)/{n}, "
                 "N being completions")
        for flag in ("--target", "--sale-file", "--doors-open-at", "--out"):
            if option(flag) is None:
                fail(where, f"the shard container passes no {flag}")
        out = option("--out") or ""
        if "$(JOB_COMPLETION_INDEX)" not in out:
            fail(where, f"--out {out!r} must contain $(JOB_COMPLETION_INDEX): one directory "
                 "per shard")
        mrel, merge = merges[0]
        mwhere = name_of(mrel, merge)
        if (merge.get("spec") or {}).get("backoffLimit") != 0:
            fail(mwhere, "backoffLimit must be 0: the exit status is the verdict")
        mcontainers = pod_spec(merge).get("containers") or []
        margs = (mcontainers[0].get("args") or []) if mcontainers else []
        if margs[:1] != ["merge"]:
            fail(mwhere, "the merge container's args must start with `merge`")
        else:
            dirs = [a for a in margs[1:] if not a.startswith("-")]
            # Drop the value of a separate `--out DIR` / `--target URL`.
            for flag in ("--out", "--target"):
                if flag in margs:
                    value = margs[margs.index(flag) + 1]
                    if value in dirs:
                        dirs.remove(value)
            if isinstance(n, int):
                expected = [out.replace("$(JOB_COMPLETION_INDEX)", str(k)) for k in range(n)]
                if dirs != expected:
                    fail(mwhere, f"merges {dirs}, but the shards write {expected}")

# Kustomizations name files that exist.
for rel, k in kustomizations:
    base = os.path.join(original_root, os.path.dirname(rel))
    for entry in k.get("resources") or []:
        if not os.path.exists(os.path.join(base, entry)):
            fail(rel, f"resources names {entry}, which does not exist")

for p in problems:
    print(p)
sys.exit(1 if problems else 0)
PY
}

# Layers 1-3 on one directory. Prints what failed; returns non-zero when anything did.
validate_dir() { # DIR
  local dir=$1 work status=0 f rel kdir name files=()
  work=$(mktemp -d)
  mkdir -p "$work/filled" "$work/rendered"
  local pairs=()
  while IFS= read -r f; do
    rel=${f#"$dir"/}
    mkdir -p "$work/filled/$(dirname "$rel")"
    pairs+=("$f" "$work/filled/$rel")
    case "$(basename "$f")" in
      kustomization.yaml | kustomization.yml) ;;
      *) files+=("$rel") ;;
    esac
  done < <(find "$dir" -type f \( -name '*.yaml' -o -name '*.yml' \) | sort)
  if [ "${#files[@]}" -eq 0 ]; then
    echo "no manifests found under $dir"
    rm -rf "$work"
    return 1
  fi
  fill_placeholders "${pairs[@]}"
  schema_check "$work/filled" "${files[@]}" || status=1
  recipe_check "$work/filled" "$dir" || status=1
  if command -v kubectl >/dev/null; then
    while IFS= read -r kdir; do
      kdir=$(dirname "$kdir")
      rel=${kdir#"$dir"}
      name="kustomize${rel//\//_}.yaml"
      if ! kubectl kustomize "$kdir" >"$work/rendered/$name.raw" 2>"$work/rendered/$name.err"; then
        echo "RENDER ${rel#/}: kubectl kustomize failed: $(cat "$work/rendered/$name.err")"
        status=1
        continue
      fi
      fill_placeholders "$work/rendered/$name.raw" "$work/rendered/$name"
      schema_check "$work/rendered" "$name" || status=1
    done < <(find "$dir" -name kustomization.yaml | sort)
  fi
  rm -rf "$work"
  return "$status"
}

ensure_validator
"$py" -c 'import yaml' 2>/dev/null || die_setup "PyYAML is missing from $venv (reinstall: rm -rf $venv)"

if [ $# -gt 0 ]; then
  target_dir=$(cd "$1" && pwd)
  self_test=false
else
  target_dir="$repo/deploy/kubernetes"
  self_test=true
fi
count=$(find "$target_dir" -type f \( -name '*.yaml' -o -name '*.yml' \) | wc -l)
render_note="kustomizations rendered with $(kubectl version --client 2>/dev/null | grep -i kustomize || echo kubectl)"
command -v kubectl >/dev/null || render_note="kustomizations not rendered (no kubectl here; their resource lists were checked)"
log "kubernetes-validate $validator_version, --strict, Kubernetes ${k8s_versions[*]}; $count files" \
  "under ${target_dir#"$repo"/}; $render_note"

if ! validate_dir "$target_dir"; then
  log "FAILED: ${target_dir#"$repo"/} is not valid (above)"
  exit 1
fi
log "ok: every manifest under ${target_dir#"$repo"/} is valid"
$self_test || exit 0

# The self-test: each broken copy must be refused. NAME|FILE|python expression on `s` (the
# file's text) giving the broken text.
mutants=(
  "misspelt field (parallelsim)|shards-job.yaml|s.replace('  parallelism: 4', '  parallelsim: 4', 1)"
  "completionMode: Sideways|shards-job.yaml|s.replace('completionMode: Indexed', 'completionMode: Sideways', 1)"
  "completions of the wrong type|shards-job.yaml|s.replace('completions: 4', 'completions: \"four\"', 1)"
  "undefined \$(VAR) in args|shards-job.yaml|s.replace('--shard=\$(JOB_COMPLETION_INDEX)/4', '--shard=\$(JOB_COMPLETION_INDX)/4', 1)"
  "retries allowed|shards-job.yaml|s.replace('backoffLimitPerIndex: 0', 'backoffLimitPerIndex: 2', 1)"
  "merge misses a shard|merge-job.yaml|s.replace('            - /results/\${CAMPAIGN}/shard-3\n', '', 1)"
  "unknown apiVersion|results-pvc.yaml|s.replace('apiVersion: v1', 'apiVersion: v2', 1)"
  "ReadWriteOnce results|results-pvc.yaml|s.replace('- ReadWriteMany', '- ReadWriteOnce', 1)"
  "whole-value placeholder|shards-job.yaml|s.replace('            - name: FLASHSALE_ADMIN_TOKEN\n', '            - name: DOORS_OPEN_AT\n              value: \"\${DOORS_OPEN_AT}\"\n            - name: FLASHSALE_ADMIN_TOKEN\n', 1)"
)
log "self-test: ${#mutants[@]} broken copies, each must be refused"
let_through=0
for m in "${mutants[@]}"; do
  IFS='|' read -r name file expr <<<"$m"
  copy=$(mktemp -d)
  cp -R "$target_dir/." "$copy/"
  if ! "$py" - "$copy/$file" "$expr" <<'PY'
import sys
path, expr = sys.argv[1], sys.argv[2]
s = open(path, encoding="utf-8").read()
broken = eval(expr)
if broken == s:
    sys.exit(f"the mutation did not apply to {path}: update the self-test")
open(path, "w", encoding="utf-8").write(broken)
PY
  then
    log "FAILED: the self-test itself is out of date (above)"
    exit 1
  fi
  if out=$(validate_dir "$copy" 2>&1); then
    log "  LET THROUGH: $name ($file)"
    let_through=$((let_through + 1))
  else
    first=$(grep -E '^(ERROR|WARN|FATAL|RECIPE|RENDER)' <<<"$out" | head -n 1)
    log "  refused: $name: ${first:-$out}"
  fi
  rm -rf "$copy"
done
if [ "$let_through" -gt 0 ]; then
  log "FAILED: $let_through broken cop$([ "$let_through" -eq 1 ] && echo y || echo ies) let through"
  exit 1
fi
log "ok: every broken copy was refused"
