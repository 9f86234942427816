"""Checks the admin API's OpenAPI document with independent tools (run by scripts/openapi-check,
which installs them): the document itself with openapi-spec-validator, every request example
against its schema, and, read as JSON lines on stdin, answers the real server gave:

    {"method": "get", "path": "/tenants/{tenant}", "status": 200,
     "content_type": "application/json", "body": {...} or null}

Each answer's status must be documented for its operation, its content type among the documented
ones, and a JSON body must match the documented schema (formats such as uuid and date-time
included). Prints one line per problem and exits 1 if there is any.
"""

import json
import sys

from openapi_schema_validator import OAS31Validator, oas31_format_checker
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_URI = "urn:portcullis:openapi"


def pointer(*parts):
    return "#/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        spec = json.load(f)
    problems = []
    try:
        validate(spec)
    except Exception as err:  # the validator's own error types vary by version
        problems.append(f"the document is not valid OpenAPI: {err}")

    registry = Registry().with_resource(SPEC_URI, Resource.from_contents(spec, default_specification=DRAFT202012))

    def errors(location, instance):
        validator = OAS31Validator({"$ref": SPEC_URI + location}, registry=registry,
                                   format_checker=oas31_format_checker)
        return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                for e in validator.iter_errors(instance)]

    examples = 0
    for path, item in spec.get("paths", {}).items():
        for method, operation in item.items():
            for media, content in operation.get("requestBody", {}).get("content", {}).items():
                if "example" in content and "schema" in content:
                    examples += 1
                    where = pointer("paths", path, method, "requestBody", "content", media, "schema")
                    for e in errors(where, content["example"]):
                        problems.append(f"{method.upper()} {path}: the request example does not match its schema: {e}")

    answers = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        answer = json.loads(line)
        answers += 1
        method, path, status = answer["method"], answer["path"], answer["status"]
        name = f"{method.upper()} {path} answered {status}"
        operation = spec["paths"].get(path, {}).get(method)
        if operation is None:
            problems.append(f"{name}: the document has no such operation")
            continue
        responses = operation["responses"]
        key = next((k for k in (str(status), f"{str(status)[0]}XX", "default") if k in responses), None)
        if key is None:
            problems.append(f"{name}: the status is not documented ({', '.join(responses)})")
            continue
        response = responses[key]
        location = ("paths", path, method, "responses", key)
        if "$ref" in response:
            name_of = response["$ref"].rsplit("/", 1)[1]
            response = spec["components"]["responses"][name_of]
            location = ("components", "responses", name_of)
        content = response.get("content", {})
        media = (answer.get("content_type") or "").split(";")[0].strip()
        if not content:
            continue
        if media not in content:
            problems.append(f"{name}: content type `{media}` is not documented ({', '.join(content)})")
            continue
        if media == "application/json" and "schema" in content[media]:
            for e in errors(pointer(*location, "content", media, "schema"), answer["body"]):
                problems.append(f"{name}: the body does not match the documented schema: {e}")

    for problem in problems:
        print(problem)
    print(f"checked the document, {examples} request examples and {answers} answers: {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
