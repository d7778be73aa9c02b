#!/usr/bin/env python3
"""Checks openapi.yaml on its own: every schema is valid JSON Schema 2020-12, every example
validates against its schema, every 2xx JSON answer has an example, every error answer is
application/problem+json, every JSON request body is closed (additionalProperties: false) and may
answer 400/413/415/422, and every path parameter is declared. (tests/api/contract.rs holds the
spec against the router; scripts/test fuzzes the running service against it with schemathesis.)

Usage: check_openapi.py [openapi.yaml]
"""
import re
import sys

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_URI = "urn:dendrite:openapi"


def pointer(*parts):
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def main(path):
    spec = yaml.safe_load(open(path))
    registry = Registry().with_resource(SPEC_URI, Resource.from_contents(spec, default_specification=DRAFT202012))
    problems = []
    checked = 0

    def deref(node):
        # Follows a chain of {"$ref": "#/..."} objects inside the spec.
        while isinstance(node, dict) and set(node) == {"$ref"}:
            target = spec
            for key in node["$ref"][2:].split("/"):
                target = target[key.replace("~1", "/").replace("~0", "~")]
            node = target
        return node

    def check_example(where, schema_pointer, example):
        nonlocal checked
        checked += 1
        validator = Draft202012Validator({"$ref": SPEC_URI + "#" + schema_pointer}, registry=registry)
        for error in validator.iter_errors(example):
            problems.append(f"{where}: example at {list(error.absolute_path)}: {error.message[:200]}")

    for name, schema in spec["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)
        for i, example in enumerate(schema.get("examples", [])):
            check_example(f"schema {name} examples[{i}]", pointer("components", "schemas", name), example)

    for route, item in spec["paths"].items():
        shared_parameters = item.get("parameters", [])
        for method, operation in item.items():
            if method == "parameters":
                continue
            where = f"{method.upper()} {route}"
            for code, response in operation["responses"].items():
                base = (
                    response["$ref"][1:].split("/")
                    if "$ref" in response
                    else ["paths", route, method, "responses", code]
                )
                base = [p.replace("~1", "/") for p in base if p]
                for media_type, media in deref(response).get("content", {}).items():
                    if code.startswith("2") and media_type == "application/json" and "example" not in media:
                        problems.append(f"{where} {code}: no example")
                    if code[0] in "45" and media_type != "application/problem+json":
                        problems.append(f"{where} {code}: an error answered as {media_type}")
                    if "example" in media:
                        check_example(f"{where} {code}", pointer(*base, "content", media_type, "schema"), media["example"])
            body = operation.get("requestBody")
            if body:
                for media_type, media in body["content"].items():
                    if deref(media["schema"]).get("additionalProperties") is not False:
                        problems.append(f"{where}: the request body schema is open")
                    if "example" in media:
                        check_example(
                            f"{where} request",
                            pointer("paths", route, method, "requestBody", "content", media_type, "schema"),
                            media["example"],
                        )
                missing = {"400", "413", "415", "422"} - set(operation["responses"])
                if missing:
                    problems.append(f"{where}: a JSON body may also answer {sorted(missing)}")
            named = set(re.findall(r"{(\w+)}", route))
            declared = {
                deref(p)["name"]
                for p in shared_parameters + operation.get("parameters", [])
                if deref(p)["in"] == "path"
            }
            if named != declared:
                problems.append(f"{where}: path parameters {sorted(named)} but declared {sorted(declared)}")

    for problem in problems:
        print("FAIL", problem)
    print(f"openapi.yaml: {checked} examples valid against their schemas, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "openapi.yaml"))
