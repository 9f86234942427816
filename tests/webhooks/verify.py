"""Verifies webhook deliveries with the Standard Webhooks reference library (standardwebhooks).

Reads JSON lines of {"headers": {...}, "body": "..."} on stdin; prints `ok` or `refused: <why>`
for each, in order. The secret is the first argument. Run through scripts/webhook-verify.
"""
import json
import sys

from standardwebhooks import Webhook, WebhookVerificationError

webhook = Webhook(sys.argv[1])
for line in sys.stdin:
    if not line.strip():
        continue
    delivery = json.loads(line)
    try:
        webhook.verify(delivery["body"], delivery["headers"])
        print("ok")
    except (WebhookVerificationError, ValueError) as err:
        print(f"refused: {err}")
