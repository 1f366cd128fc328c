/**
 * A small validator for a CRD's openAPIV3Schema: type, properties (unknown
 * fields are reported, where Kubernetes would silently prune them),
 * required, items, enum, pattern, minLength/maxLength, minItems/maxItems and
 * x-kubernetes-list-type: set, and the `self.matches('…')` CEL rules of
 * x-kubernetes-validations on strings. Enough for the openshift/api schemas the tests
 * check documents against; it reports every problem with its path.
 */
import { parse } from "yaml";

/** The part of a JSON schema the validator reads. */
export interface Schema {
  type?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  enum?: unknown[];
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  "x-kubernetes-list-type"?: string;
  "x-kubernetes-preserve-unknown-fields"?: boolean;
  "x-kubernetes-validations"?: { rule: string; message?: string }[];
}

/** The regular expression of a `self.matches('…')` CEL rule (CEL's `\\` is one backslash), or undefined for other rules. */
function celMatches(rule: string): RegExp | undefined {
  const m = /^self\.matches\('(.*)'\)$/.exec(rule.trim());
  return m ? new RegExp(m[1].replaceAll("\\\\", "\\")) : undefined;
}

/** The schema of a CRD file's version `version` (or its first). */
export async function crdSchema(path: string, version?: string): Promise<Schema> {
  const crd = parse(await Deno.readTextFile(path));
  const v = (crd.spec.versions as { name: string; schema: { openAPIV3Schema: Schema } }[]).find((x) => !version || x.name === version);
  if (!v) throw new Error(`${path} has no version ${version}`);
  return v.schema.openAPIV3Schema;
}

function typeOf(v: unknown): string {
  if (Array.isArray(v)) return "array";
  if (v === null) return "null";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v;
}

/** Every problem of `value` against `schema`, as "path: what". */
export function validate(schema: Schema, value: unknown, path = "$"): string[] {
  const errs: string[] = [];
  const t = typeOf(value);
  if (schema.type && schema.type !== t && !(schema.type === "number" && t === "integer")) {
    return [`${path}: is ${t}, want ${schema.type}`];
  }
  if (schema.enum && !schema.enum.includes(value)) {
    errs.push(`${path}: ${JSON.stringify(value)} is not one of ${JSON.stringify(schema.enum)}`);
  }
  if (typeof value === "string") {
    if (schema.pattern && !new RegExp(schema.pattern).test(value)) {
      errs.push(`${path}: ${JSON.stringify(value)} does not match ${schema.pattern}`);
    }
    if (schema.minLength !== undefined && value.length < schema.minLength) errs.push(`${path}: shorter than ${schema.minLength}`);
    if (schema.maxLength !== undefined && value.length > schema.maxLength) errs.push(`${path}: longer than ${schema.maxLength}`);
    for (const rule of schema["x-kubernetes-validations"] ?? []) {
      const re = celMatches(rule.rule);
      if (re && !re.test(value)) errs.push(`${path}: ${rule.message ?? rule.rule} (${JSON.stringify(value)})`);
    }
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) errs.push(`${path}: fewer than ${schema.minItems} items`);
    if (schema.maxItems !== undefined && value.length > schema.maxItems) errs.push(`${path}: more than ${schema.maxItems} items`);
    if (schema["x-kubernetes-list-type"] === "set" && new Set(value.map((x) => JSON.stringify(x))).size !== value.length) {
      errs.push(`${path}: a set with duplicates`);
    }
    if (schema.items) value.forEach((x, i) => errs.push(...validate(schema.items!, x, `${path}[${i}]`)));
  }
  if (t === "object" && schema.properties) {
    const obj = value as Record<string, unknown>;
    for (const r of schema.required ?? []) if (!(r in obj)) errs.push(`${path}: missing required ${r}`);
    for (const [k, v] of Object.entries(obj)) {
      const sub = schema.properties[k];
      if (sub) errs.push(...validate(sub, v, `${path}.${k}`));
      else if (!schema["x-kubernetes-preserve-unknown-fields"]) errs.push(`${path}: unknown field ${k}`);
    }
  }
  return errs;
}
