#!/usr/bin/env python3
"""Regenerates chat_templates.json: reference renderings by Python's Jinja2 configured the
way Hugging Face renders chat templates (ImmutableSandboxedEnvironment, trim_blocks,
lstrip_blocks, loopcontrols, tojson with ensure_ascii=False, raise_exception). The C++
Jinja subset (chat/jinja*.cpp) must produce the same text, or raise where Jinja2 raises.

    python3 tests/chat/data/gen_chat_templates.py ../shared/tokenizers
"""
import json
import os
import sys

from jinja2.exceptions import TemplateError

from jinja_reference import CONVERSATIONS, render


MISTRAL_V1 = ("{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
              "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
              "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
              "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
              "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}")

MISTRAL_V3 = """{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}

{{- bos_token }}
{%- for message in loop_messages %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}
    {%- endif %}
    {%- if message['role'] == 'user' %}
        {%- if loop.first and system_message is defined %}
            {{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}
        {%- else %}
            {{- ' [INST] ' + message['content'] + ' [/INST]' }}
        {%- endif %}
    {%- elif message['role'] == 'assistant' %}
        {{- ' ' + message['content'] + eos_token}}
    {%- else %}
        {{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}
    {%- endif %}
{%- endfor %}
"""

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")

# Block tags on their own lines (trim_blocks / lstrip_blocks), comments, for-else, filters,
# tests, slicing, namespaces, block set, dict literals and methods.
FEATURES = """{# a comment line #}
{% set ns = namespace(count=0, roles=[]) %}
{% for m in messages %}
    {% if m.role == 'user' %}
        {% set ns.count = ns.count + 1 %}
    {% endif %}
{% endfor %}
users={{ ns.count }} total={{ messages|length }} last={{ messages[-1].role }}
roles={{ messages|map(attribute='role')|join(',') }}
firstuser={{ (messages|selectattr('role', 'equalto', 'user')|list|first).content|upper }}
{% for m in messages[::-1] if m.role != 'system' %}
  {{ loop.index }}/{{ loop.length }}{{ ' first' if loop.first }}{{ ' last' if loop.last else '' }}: {{ m.content[:5] ~ '|' ~ m.content[-3:] }}
{% else %}
  none
{% endfor %}
{% for k, v in {'a': 1, 'b': [1, 2.5, 'x'], 'c': none, 'd': true}.items() %}{{ k }}={{ v }};{% endfor %}

{{ {'a': 1, 'b': [1, 2.5, 'x', none, false], 'c': 'é"\\n'}|tojson }}
{{ [1, 2]|tojson(indent=2) }}
{% set block %}  inside {{ 1 + 2 * 3 }} {% endset %}[{{ block|trim }}] [{{ block }}]
{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 7 / 2 }} {{ 'ab' * 3 }} {{ 1.5 + 1 }}
{{ 'x' in 'xyz' }} {{ 'q' not in ['a', 'b'] }} {{ undefined_var is defined }} {{ none is none }} {{ 3 is odd }}
{{ '  pad  '|trim }}|{{ 'a,b,,c'.split(',') }}|{{ 'Hello World'.lower().startswith('hello') }}|{{ ' x '.strip() }}|{{ 'a-b'.replace('-', '+') }}
{{ 'hello world'|title }} {{ 'HELLO'|capitalize }} {{ [3, 1, 2]|reverse|list }} {{ range(3)|list }} {{ range(1, 10, 3)|list }}
{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}

{%- if true %}
    stripped-left
{%- endif %}
  {%+ if true %}kept-indent{% endif %}

{{ missing|default('dflt') }} {{ ''|default('empty', true) }} {{ messages[0].get('name', 'anon') }} {{ messages[0]['nope'] is undefined }}
{{ (messages|length > 2) and 'many' or 'few' }} {{ not messages }} {{ 1 if 0 else 2 }}
{{ "double \\"quoted\\"" }} {{ 'it\\'s' }} {{ "tab\\tand\\\\slash" }}
"""

# The filters and string methods added for issue 14, over the conversation's own data.
FILTERS = """{%- set lens = messages | map(attribute='content') | map('length') | list -%}
sum={{ lens | sum }} sum0={{ [] | sum }} sumstart={{ lens | sum(start=10) }} sumattr={{ [{'n': 2}, {'n': 3.5}] | sum(attribute='n') }}
min={{ lens | min }} max={{ lens | max }} minstr={{ ['b', 'A', 'c'] | min }} maxstr={{ ['b', 'A', 'c'] | max }} maxcs={{ ['b', 'A', 'c'] | max(case_sensitive=true) }}
roles={{ messages | map(attribute='role') | sort | join(',') }} rev={{ messages | map(attribute='role') | sort(reverse=true) | join(',') }}
byattr={{ messages | sort(attribute='content') | map(attribute='role') | join(',') }} mixed={{ ['b', 'A', 'a', 'C'] | sort | join }}
round={{ 2.5 | round }} {{ 3.5 | round }} {{ 2.675 | round(2) }} {{ 7 | round }} {{ 2.1 | round(method='ceil') }} {{ 2.9 | round(0, 'floor') }} {{ (lens | sum / 3) | round(1) }}
{% for m in messages -%}
[{{ m.content | indent(2) }}] [{{ ('x\n\ny\n' ~ m.content) | indent(3, first=true) }}] [{{ 'a\n\nb' | indent('> ', blank=true) }}]
[{{ m.content | truncate(9) }}] [{{ m.content | truncate(4, true, '~', 0) }}] [{{ (m.content ~ ' and a much longer tail of words') | truncate(16) }}]
lines={{ ('one\ntwo\r\nthree\n\n' ~ m.content).splitlines() | length }} {{ 'a\nb'.splitlines() | join('|') }}
{% endfor -%}
"""

def main():
    tok_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../../../shared/tokenizers")
    templates = {
        "llama3": json.load(open(os.path.join(tok_dir, "llama3/tokenizer_config.json")))["chat_template"],
        "qwen3": json.load(open(os.path.join(tok_dir, "qwen3/tokenizer_config.json")))["chat_template"],
        "mistral_v1": MISTRAL_V1,
        "mistral_v3": MISTRAL_V3,
        "chatml": CHATML,
        "features": FEATURES,
        "filters": FILTERS,
    }
    cases = []
    for tname, source in templates.items():
        for cname, msgs in CONVERSATIONS.items():
            for agp in (True, False):
                ctx = {"messages": msgs, "add_generation_prompt": agp, "bos_token": "<s>", "eos_token": "</s>"}
                extra = [{}]
                if tname == "qwen3" and cname == "system":
                    extra.append({"enable_thinking": False})
                    extra.append({"tools": [{"type": "function", "function": {"name": "get_weather",
                                   "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]})
                for kw in extra:
                    c = dict(ctx, **kw)
                    try:
                        out, err = render(source, c), None
                    except TemplateError as e:
                        out, err = None, str(e)
                    cases.append({"template": tname, "name": f"{tname}/{cname}/agp={agp}/{sorted(kw)}",
                                  "context": c, "expected": out, "error": err})
    json.dump({"templates": templates, "cases": cases}, open(os.path.join(os.path.dirname(__file__), "chat_templates.json"), "w"),
              ensure_ascii=False, indent=1)
    print(f"{len(cases)} cases")


if __name__ == "__main__":
    main()
