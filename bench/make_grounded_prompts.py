#!/usr/bin/python3
"""Builds an input-grounded workload for n-gram speculation benchmarks: each prompt holds a
story the model wrote itself (greedy, past its end-of-story token, from one of the opening lines in prompts/tinystories.jsonl),
a blank line, and the story's first sentence again, so a model that copies from its context
would reproduce the rest of the story.

usage: make_grounded_prompts.py TROUPE_BIN MODEL OUT.jsonl [--tokens 200]"""
import argparse, json, os, subprocess

ap = argparse.ArgumentParser()
ap.add_argument("troupe"); ap.add_argument("model"); ap.add_argument("out")
ap.add_argument("--tokens", type=int, default=200)
a = ap.parse_args()
src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "prompts", "tinystories.jsonl")
with open(src) as f, open(a.out, "w") as out:
    for line in f:
        opening = json.loads(line)["prompt"]
        r = subprocess.run([a.troupe, "generate", "--model", a.model, "--prompt", opening,
                            "--max-tokens", str(a.tokens), "--temperature", "0", "--ignore-eos", "--json"], check=True, capture_output=True, text=True)
        story = opening + json.loads(r.stdout)["text"].replace("<|end_story|>", "\n")
        out.write(json.dumps({"prompt": story.strip() + "\n\n" + opening}) + "\n")
