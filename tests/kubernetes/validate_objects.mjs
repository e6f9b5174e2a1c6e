#!/usr/bin/env node
// Validates Kubernetes objects offline against the schemas of the npm
// package kubernetes-models (pinned in package-lock.json beside this file,
// installed into ./node_modules by scripts/install-deps.sh).
//
//   node tests/kubernetes/validate_objects.mjs FILE_OR_DIR...
//
// Reads every .yaml, .yml and .json file given or found below a directory
// given (sorted; a directory named `seccomp` is skipped: it holds OCI
// seccomp profiles, not Kubernetes objects). Each YAML document, or each
// JSON file, is one object. For each object:
//   - apiVersion, kind and metadata.name are required;
//   - the kubernetes-models class of that apiVersion and kind is looked up
//     (an unknown group, version or kind fails) and its validation run:
//     types, enums, required fields, formats such as quantities;
//   - fields the schema does not know fail too. kubernetes-models does not
//     check this (its schemas allow additional properties) and ships its
//     schemas only as compiled ajv validators, not as JSON. So the object
//     is handed to the validator wrapped in proxies that record which keys
//     the validator reads: a validator reads every property its schema
//     names, present or not, and iterates the keys of a map
//     (additionalProperties). A key that a validator visited an object for
//     but never read is a field its schema does not have. Objects whose
//     schema is free-form (no properties, no map) are never looked at by
//     the validator and are not judged.
// Prints `ok <file> <kind>/<name>` or `FAIL <file> <kind>/<name>: <reasons>`,
// one line per object, each reason with the JSON pointer of the value.
// Exit status: 0 all passed, 1 some failed, 2 usage error, 3 the packages
// are not installed (run scripts/install-deps.sh), 70 an internal error (a
// bug here, never a verdict on the objects).

import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";

const EXIT_FAILED = 1;
const EXIT_USAGE = 2;
const EXIT_NOT_INSTALLED = 3;
const EXIT_INTERNAL = 70;

// An exception that escapes is a bug of this script, not a verdict: node
// would exit 1 for it, the status of a failed check.
for (const event of ["uncaughtException", "unhandledRejection"]) {
  process.on(event, (e) => {
    console.error(`validate_objects: internal error: ${e?.stack ?? e}`);
    process.exit(EXIT_INTERNAL);
  });
}

function usage(message) {
  if (message) console.error(`validate_objects: ${message}`);
  console.error("usage: validate_objects.mjs FILE_OR_DIR...");
  process.exit(EXIT_USAGE);
}

let YAML;
try {
  YAML = await import("yaml");
  await import("kubernetes-models/v1/Namespace");
} catch (e) {
  console.error(`validate_objects: cannot load the npm packages (${e.code ?? e.message}):` +
                ` run scripts/install-deps.sh, which runs npm ci in ${path.dirname(new URL(import.meta.url).pathname)}`);
  process.exit(EXIT_NOT_INSTALLED);
}

const OBJECT_FILE = /\.(ya?ml|json)$/;

// The files to read, in a stable order.
function collect(arg, out, top) {
  let st;
  try {
    st = statSync(arg);
  } catch (e) {
    usage(`${arg}: ${e.code === "ENOENT" ? "no such file or directory" : e.message}`);
  }
  if (st.isDirectory()) {
    if (!top && path.basename(arg) === "seccomp") return;
    for (const entry of readdirSync(arg).sort()) {
      const child = path.join(arg, entry);
      if (statSync(child).isDirectory() || OBJECT_FILE.test(entry)) collect(child, out, false);
    }
  } else if (top || OBJECT_FILE.test(arg)) {
    out.push(arg);
  }
}

// The documents of one file, each { index, value } or { index, error }.
function readDocuments(file) {
  const text = readFileSync(file, "utf8");
  if (file.endsWith(".json")) {
    try {
      return [{ index: 1, value: JSON.parse(text) }];
    } catch (e) {
      return [{ index: 1, error: `not JSON: ${e.message}` }];
    }
  }
  // YAML 1.1, as Kubernetes reads it (sigs.k8s.io/yaml uses go-yaml v2):
  // an unquoted `yes`, `on` or `0755` means there what it means here.
  const docs = YAML.parseAllDocuments(text, { version: "1.1", uniqueKeys: true });
  if (!Array.isArray(docs)) return [{ index: 1, error: "not YAML" }];
  const out = [];
  docs.forEach((doc, i) => {
    if (doc.errors.length > 0) {
      out.push({ index: i + 1, error: `YAML: ${doc.errors.map((e) => e.message.split("\n")[0]).join("; ")}` });
      return;
    }
    const value = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) return; // an empty document, as after a trailing ---
    out.push({ index: i + 1, value });
  });
  return out;
}

function pointer(parent, key) {
  return `${parent}/${String(key).replace(/~/g, "~0").replace(/\//g, "~1")}`;
}

// A copy of value in which every object is a proxy that records the keys
// the validator reads (get, has) and whether it listed the keys (ownKeys).
function instrument(value, at, records) {
  if (Array.isArray(value)) return value.map((v, i) => instrument(v, pointer(at, i), records));
  if (value === null || typeof value !== "object") return value;
  const record = { at, target: {}, read: new Set(), listed: false };
  for (const [k, v] of Object.entries(value)) record.target[k] = instrument(v, pointer(at, k), records);
  records.push(record);
  return new Proxy(record.target, {
    get(t, key, receiver) {
      if (typeof key === "string") record.read.add(key);
      return Reflect.get(t, key, receiver);
    },
    has(t, key) {
      if (typeof key === "string") record.read.add(key);
      return Reflect.has(t, key);
    },
    ownKeys(t) {
      record.listed = true;
      return Reflect.ownKeys(t);
    },
  });
}

function unknownFields(records) {
  const out = [];
  for (const r of records) {
    if (r.listed || r.read.size === 0) continue; // a map, or never looked at
    for (const key of Object.keys(r.target)) {
      if (!r.read.has(key)) out.push(`${pointer(r.at, key)}: unknown field "${key}"`);
    }
  }
  return out;
}

function show(value) {
  const s = JSON.stringify(value);
  return s === undefined ? String(value) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function valueAt(root, at) {
  let v = root;
  for (const part of at.split("/").slice(1)) {
    if (v === null || typeof v !== "object") return undefined;
    v = v[part.replace(/~1/g, "/").replace(/~0/g, "~")];
  }
  return v;
}

// ajv's errors, one reason per JSON pointer; the errors of the branches of
// a failed oneOf/anyOf are folded into it.
function schemaErrors(errors, root) {
  const byPath = new Map();
  for (const e of errors) {
    const at = e.instancePath || "";
    if (!byPath.has(at)) byPath.set(at, []);
    byPath.get(at).push(e);
  }
  const out = [];
  for (const [at, list] of byPath) {
    const describe = (e) => {
      let m = e.message ?? e.keyword;
      if (e.keyword === "enum") m += ` (${e.params.allowedValues.map(show).join(", ")})`;
      return m;
    };
    const combinator = list.find((e) => e.keyword === "oneOf" || e.keyword === "anyOf");
    const value = valueAt(root, at);
    const where = at === "" ? "(the object)" : at;
    const got = value !== null && typeof value === "object" ? "" : ` (${show(value)})`;
    if (combinator) {
      const branches = list.filter((e) => e !== combinator).map(describe);
      out.push(`${where}${got}: ${describe(combinator)}: ${[...new Set(branches)].join(" or ")}`);
    } else {
      out.push(`${where}${got}: ${[...new Set(list.map(describe))].join("; ")}`);
    }
  }
  return out;
}

const API_VERSION = /^(?:([a-z0-9]([a-z0-9.-]*[a-z0-9])?)\/)?(v[0-9]+(?:(?:alpha|beta)[0-9]+)?)$/;
const KIND = /^[A-Z][A-Za-z0-9]*$/;

async function modelClass(apiVersion, kind) {
  const m = API_VERSION.exec(apiVersion);
  if (!m) return { error: `apiVersion ${show(apiVersion)} is not group/version or version` };
  if (!KIND.test(kind)) return { error: `kind ${show(kind)} is not a kind name` };
  const group = m[1] ?? "";
  const version = m[3];
  const spec = group === "" ? `kubernetes-models/${version}/${kind}` : `kubernetes-models/${group}/${version}/${kind}`;
  let mod;
  try {
    mod = await import(spec);
  } catch (e) {
    if (e.code === "ERR_PACKAGE_PATH_NOT_EXPORTED" || e.code === "ERR_MODULE_NOT_FOUND") {
      return { error: `unknown kind ${kind} in ${apiVersion} (kubernetes-models has no ${spec})` };
    }
    throw e;
  }
  const cls = mod[kind];
  // Only top-level objects have a static kind; DeploymentSpec has not.
  if (typeof cls !== "function" || cls.kind !== kind || cls.apiVersion !== apiVersion) {
    return { error: `${kind} is not an object kind of ${apiVersion}` };
  }
  return { cls };
}

async function check(doc) {
  const v = doc.value;
  if (v === null || typeof v !== "object" || Array.isArray(v)) {
    return { id: `document ${doc.index}`, reasons: ["not an object (a mapping)"] };
  }
  const kind = typeof v.kind === "string" ? v.kind : "";
  const name = typeof v.metadata?.name === "string" ? v.metadata.name : "";
  const id = `${kind || "?"}/${name || "?"}${kind && name ? "" : ` (document ${doc.index})`}`;
  const reasons = [];
  if (typeof v.apiVersion !== "string" || v.apiVersion === "") reasons.push("/apiVersion: required");
  if (kind === "") reasons.push("/kind: required");
  // (A name that is not a string is the schema's to report.)
  if (v.metadata?.name === undefined || v.metadata.name === "") {
    reasons.push("/metadata/name: required (an exported object has a name)");
  }
  if (typeof v.apiVersion !== "string" || kind === "") return { id, reasons };

  const found = await modelClass(v.apiVersion, kind);
  if (found.error) return { id, reasons: [...reasons, found.error] };
  const records = [];
  const wrapped = instrument(v, "", records);
  try {
    found.cls.prototype.validate.call(wrapped);
  } catch (e) {
    if (!Array.isArray(e.errors)) throw e;
    reasons.push(...schemaErrors(e.errors, v));
  }
  reasons.push(...unknownFields(records));
  return { id, reasons };
}

const args = process.argv.slice(2);
if (args.length === 0) usage();
if (args.some((a) => a.startsWith("-"))) usage(`unknown option ${args.find((a) => a.startsWith("-"))}`);
const files = [];
for (const a of args) collect(a, files, true);

let failed = 0;
let objects = 0;
if (files.length === 0) {
  console.log(`FAIL ${args.join(" ")}: no .yaml, .yml or .json file`);
  failed++;
}
for (const file of files) {
  const docs = readDocuments(file);
  if (docs.length === 0) {
    console.log(`FAIL ${file}: no object in the file`);
    failed++;
  }
  for (const doc of docs) {
    const result = doc.error ? { id: `document ${doc.index}`, reasons: [doc.error] } : await check(doc);
    objects++;
    if (result.reasons.length === 0) {
      console.log(`ok ${file} ${result.id}`);
    } else {
      console.log(`FAIL ${file} ${result.id}: ${result.reasons.join("; ")}`);
      failed++;
    }
  }
}
console.log(`validate_objects: ${objects} objects in ${files.length} files, ${failed} failed`);
process.exit(failed > 0 ? EXIT_FAILED : 0);
