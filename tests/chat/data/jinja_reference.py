#!/usr/bin/env python3
"""Reference renderings by Python's Jinja2 (Debian python3-jinja2), configured exactly as
Hugging Face transformers renders chat templates: ImmutableSandboxedEnvironment with
trim_blocks, lstrip_blocks and loop controls, `raise_exception`, and the tojson override
(ensure_ascii=False, indent, separators, sort_keys passed through to json.dumps).

    python3 tests/chat/data/jinja_reference.py TOKENIZERS_DIR CORPUS_FILE

prints {"cases": [{name, template, context, expected, error}]} on stdout: every chat
template found under TOKENIZERS_DIR (tokenizer_config.json, *.jinja) rendered over the
conversations below, and every snippet of CORPUS_FILE rendered over SNIPPET_CONTEXT. The
chat suite runs this at test time and renders the same cases with chat/jinja*.cpp: the
two must agree byte for byte, or both raise.
"""
import json
import os
import sys

from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment


def render(source, ctx):
    def raise_exception(msg):
        raise TemplateError(msg)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env.from_string(source).render(**ctx)


CONVERSATIONS = {
    "basic": [{"role": "user", "content": "Hello there"}],
    "system": [{"role": "system", "content": "You are terse."},
               {"role": "user", "content": "Hi!"},
               {"role": "assistant", "content": "Hello."},
               {"role": "user", "content": "Tell me a story."}],
    "multi": [{"role": "user", "content": "  one  "},
              {"role": "assistant", "content": "two"},
              {"role": "user", "content": "thrée ✓"}],
    "thinking": [{"role": "user", "content": "Why?"},
                 {"role": "assistant", "content": "<think>\nlet me see\n</think>\n\nBecause."}],
    "bad_order": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
}

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]

# The variables every corpus snippet sees.
SNIPPET_CONTEXT = {
    "messages": CONVERSATIONS["system"] + [
        {"role": "assistant", "content": "",
         "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]},
        {"role": "tool", "content": "{\"temp\": 3}"},
        {"role": "user", "content": [{"type": "text", "text": "Parts "}, {"type": "image"}, {"type": "text", "text": "too"}]}],
    "tools": TOOLS,
    "bos_token": "<s>", "eos_token": "</s>", "add_generation_prompt": True,
    "people": [{"name": "Ann", "age": 31, "city": "Oslo", "tags": ["a", "b"]},
               {"name": "bob", "age": 25, "city": "Rome", "tags": []},
               {"name": "Cid", "age": 31, "city": "oslo", "tags": ["c"]},
               {"name": "dee", "age": 40, "city": "Rome", "tags": ["a"], "nick": "D"}],
    "nums": [3, 1, 4, 1, 5, 9, 2, 6],
    "floats": [2.5, -1.25, 3.0, 0.1],
    "words": ["banana", "Apple", "cherry", "apple", "Banana"],
    "scores": {"b": 2, "A": 1, "c": 3, "a": 0},
    "nested": {"z": {"y": [1, {"x": None}]}, "a": [True, False, 1.5, "é\"\\\n"]},
    "text": "Hello, World! ünïcode ✓",
    "multiline": "line one\n\n  line two\nline three\n",
    "flag": True, "zero": 0, "empty": "", "none_value": None, "pi": 3.14159, "big": 1234567,
}


def chat_templates(tok_dir):
    """(name, source) of every chat template under tok_dir."""
    out = []
    for root, _, files in sorted(os.walk(tok_dir)):
        rel = os.path.relpath(root, tok_dir)
        for f in sorted(files):
            path = os.path.join(root, f)
            if f == "tokenizer_config.json":
                t = json.load(open(path, encoding="utf-8")).get("chat_template")
                if isinstance(t, str):
                    out.append((rel, t))
                elif isinstance(t, list):  # named templates: [{"name": ..., "template": ...}]
                    out += [(f"{rel}:{x['name']}", x["template"]) for x in t]
            elif f.endswith(".jinja"):
                out.append((f"{rel}/{f}", open(path, encoding="utf-8").read()))
    return out


def read_corpus(path):
    """Snippets of a corpus file: a line '## name' starts one, the lines up to the next are
    its source (without the last newline)."""
    snippets, name, lines = [], None, []
    for line in open(path, encoding="utf-8").read().split("\n"):
        if line.startswith("## "):
            if name:
                snippets.append((name, "\n".join(lines)))
            name, lines = line[3:].strip(), []
        elif name:
            lines.append(line)
    if name:
        snippets.append((name, "\n".join(lines)))
    return snippets


def case(name, source, ctx):
    try:
        out, err = render(source, ctx), None
    except TemplateError as e:  # raise_exception and syntax errors
        out, err = None, f"{type(e).__name__}: {e}"
    except Exception as e:  # TypeError, UndefinedError, SecurityError, ...
        out, err = None, f"{type(e).__name__}: {e}"
    return {"name": name, "template": source, "context": ctx, "expected": out, "error": err}


def main():
    tok_dir, corpus = sys.argv[1], sys.argv[2]
    cases = []
    templates = chat_templates(tok_dir)
    if not templates:
        sys.exit(f"no chat templates under {tok_dir}")
    for tname, source in templates:
        for cname, msgs in CONVERSATIONS.items():
            for agp in (True, False):
                for extra in ({}, {"tools": TOOLS}, {"enable_thinking": False}):
                    ctx = dict({"messages": msgs, "add_generation_prompt": agp, "bos_token": "<s>", "eos_token": "</s>"}, **extra)
                    cases.append(case(f"{tname}/{cname}/agp={agp}/{sorted(extra)}", source, ctx))
    names = set()
    for name, source in read_corpus(corpus):
        if name in names:
            sys.exit(f"duplicate snippet name {name}")
        names.add(name)
        cases.append(case(f"corpus/{name}", source, SNIPPET_CONTEXT))
    json.dump({"cases": cases}, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
