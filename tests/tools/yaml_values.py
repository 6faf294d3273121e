#!/usr/bin/env python3
"""Print, as JSON, what PyYAML (a YAML 1.1 reader, like ThoughtSpot's)
reads from each YAML file given: a list with one document per file.
Used by the tests to check that strings survive exactly."""
import json
import sys

import yaml

documents = []
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        documents.append(yaml.safe_load(f))
json.dump(documents, sys.stdout, ensure_ascii=False)
