// The Jinja subset against Python's Jinja2 (reference renderings in data/chat_templates.json,
// made by data/gen_chat_templates.py with Hugging Face's settings), the Llama-3 reference
// from the shared fixtures, and the guards that keep a hostile template harmless.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>

#include "chat/chat_template.h"
#include "chat/jinja.h"
#include "model/tokenizer_loader.h"
#include "test_util.h"

using namespace troupe;

namespace {

std::string render(const std::string& tmpl, const std::string& context_json) {
  jinja::Value ctx = jinja::from_json(boost::json::parse(context_json));
  return jinja::Template(tmpl).render(ctx.as_dict());
}

}  // namespace

TEST_CASE("chat templates render exactly as Jinja2 does (Llama-3, Qwen3, Mistral, ChatML, features)") {
  auto root = boost::json::parse(test::read_file(test::source_path("tests/chat/data/chat_templates.json")));
  const auto& templates = root.at("templates").as_object();
  const auto& cases = root.at("cases").as_array();
  REQUIRE(cases.size() >= 50);
  int raised = 0;
  for (const auto& cv : cases) {
    const auto& c = cv.as_object();
    const std::string name(c.at("name").as_string());
    INFO("case " << name);
    jinja::Template t(std::string(templates.at(c.at("template").as_string()).as_string()));
    jinja::Value ctx = jinja::from_json(c.at("context"));
    if (c.at("error").is_string()) {
      try {
        t.render(ctx.as_dict());
        FAIL("expected raise_exception");
      } catch (const jinja::RaisedError& e) {
        CHECK(std::string(e.what()) == std::string(c.at("error").as_string()));
        ++raised;
      }
    } else {
      CHECK(t.render(ctx.as_dict()) == std::string(c.at("expected").as_string()));
    }
  }
  CHECK(raised >= 4);
}

TEST_CASE("Llama-3 template loaded from tokenizer_config.json matches the shared reference") {
  const std::string dir = test::tokenizer_path("llama3");
  auto tok = load_tokenizer(dir);
  ChatTemplate ct = ChatTemplate::load(dir, "", *tok);
  REQUIRE(ct.has_template());
  auto ref = boost::json::parse(test::read_file(test::fixture_path("tokenizer_reference.json"))).at("llama3_chat");
  const std::string got = ct.render(ref.at("messages").as_array(), true);
  CHECK(got == std::string(ref.at("text").as_string()));
}

TEST_CASE("models without a template fall back to the plain conversation text") {
  const std::string dir = test::model_path("tinystories-656k");
  auto tok = load_tokenizer(dir);
  ChatTemplate ct = ChatTemplate::load(dir, "", *tok);
  CHECK_FALSE(ct.has_template());
  CHECK(ct.origin() == "fallback");
  auto msgs = boost::json::parse(R"([{"role":"system","content":"A story."},{"role":"user","content":"Once upon a time"}])");
  CHECK(ct.render(msgs.as_array(), true) == "A story.\n\nOnce upon a time");
  // An override file wins over the model's (absent) template.
  const std::string tdir = test::temp_dir("tmpl");
  const std::string path = tdir + "/t.jinja";
  FILE* f = std::fopen(path.c_str(), "w");
  std::fputs("{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}", f);
  std::fclose(f);
  ChatTemplate over = ChatTemplate::load(dir, path, *tok);
  CHECK(over.has_template());
  CHECK(over.render(msgs.as_array(), true) == "[system] A story.\n[user] Once upon a time\n");
}

TEST_CASE("Jinja whitespace control and expressions") {
  CHECK(render("a  {{- 'b' -}}  c", "{}") == "abc");
  CHECK(render("{% if x %}\n  yes\n{% endif %}\n", R"({"x": true})") == "  yes\n");
  CHECK(render("  {% if x %}y{% endif %}", R"({"x": true})") == "y");  // lstrip_blocks
  CHECK(render("{{ x.y.z }}|{{ x['y'] is mapping }}", R"({"x": {"y": {"z": 3}}})") == "3|True");
  CHECK(render("{{ [1,2,3][1:] }} {{ 'abc'[::-1] }} {{ (1, 2)|length }}", "{}") == "[2, 3] cba 2");
  CHECK(render("{{ 1 < 2 and 'a' or 'b' }}{{ none }}{{ undefined }}", "{}") == "aNone");
  CHECK(render("{{ 0.1 + 0.2 }} {{ 1e20 }} {{ 3.0 }}", "{}") == "0.30000000000000004 1e+20 3.0");
  CHECK(render("{% set ns = namespace(n=0) %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}", "{}") == "6");
  // Loop scoping: a plain `set` inside a loop does not leak out (hence namespace()).
  CHECK(render("{% set n = 1 %}{% for i in [1] %}{% set n = 5 %}{% endfor %}{{ n }}", "{}") == "1");
}

TEST_CASE("broken and hostile templates fail cleanly") {
  CHECK_THROWS_AS(jinja::Template("{% if x %}never closed"), jinja::TemplateError);
  CHECK_THROWS_AS(jinja::Template("{{ 1 + }}"), jinja::TemplateError);
  CHECK_THROWS_AS(jinja::Template("{% include 'm.jinja' %}"), jinja::TemplateError);
  CHECK_THROWS_WITH(jinja::Template("line1\n{{ x | }}"), Catch::Contains("line 2"));
  CHECK_THROWS_AS(render("{{ x | nosuchfilter }}", "{}"), jinja::TemplateError);
  CHECK_THROWS_AS(render("{{ 1 / 0 }}", "{}"), jinja::TemplateError);
  CHECK_THROWS_AS(render("{{ 'a' + 1 }}", "{}"), jinja::TemplateError);
  CHECK_THROWS_AS(render("{% set x = 1 %}{% set x.y = 2 %}", "{}"), jinja::TemplateError);
  // Budgets: no template can run forever or grow without bound.
  CHECK_THROWS_WITH(render("{% for i in range(100000000) %}{% endfor %}", "{}"), Catch::Contains("budget"));
  CHECK_THROWS_AS(render("{% set s = 'x' * 100000000 %}", "{}"), jinja::TemplateError);
  std::string deep(5000, '(');
  CHECK_THROWS_AS(jinja::Template("{{ " + deep + " }}"), jinja::TemplateError);
  CHECK_THROWS_AS(render("{{ raise_exception('no') }}", "{}"), jinja::RaisedError);
  // A namespace cannot be stored inside itself (a reference cycle: never freed, never printable).
  CHECK_THROWS_WITH(render("{% set ns = namespace(a=1) %}{% set ns.me = ns %}", "{}"), Catch::Contains("itself"));
  CHECK_THROWS_WITH(render("{% set ns = namespace(a=1) %}{% set ns.l = [1, {'x': ns}] %}", "{}"),
                    Catch::Contains("itself"));
  CHECK(render("{% set a = namespace(v=1) %}{% set b = namespace(o=a) %}{{ b.o.v }}", "{}") == "1");
  CHECK(render("{{ [[1, [2]], {'a': [3]}] }}", "{}") == "[[1, [2]], {'a': [3]}]");
  CHECK_THROWS_AS(render("{{ " + std::string(150, '[') + std::string(150, ']') + " }}", "{}"), jinja::TemplateError);
  // Macros, formatting and padding have budgets too.
  CHECK_THROWS_WITH(render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "{}"), Catch::Contains("nested too deeply"));
  CHECK_THROWS_WITH(render("{{ 'x'.ljust(1000000000) }}", "{}"), Catch::Contains("budget"));
  CHECK_THROWS_WITH(render("{{ '%*s' % (1000000000, 'x') }}", "{}"), Catch::Contains("budget"));
  CHECK_THROWS_WITH(render("{{ '%*d' % (1000000000, 1) }}", "{}"), Catch::Contains("too large"));
  CHECK_THROWS_WITH(render("{% for i in range(1000) %}{{ 'x'.center(100000) }}{% endfor %}", "{}"), Catch::Contains("budget"));
  CHECK_THROWS_WITH(render("{{ [1] | batch(1000000000, 0) | list }}", "{}"), Catch::Contains("budget"));
  CHECK_THROWS_AS(render("{{ 'a'.ljust(3, 'ab') }}", "{}"), jinja::TemplateError);
  CHECK_THROWS_AS(render("{{ '%(a)s' % 1 }}", "{}"), jinja::TemplateError);
  CHECK_THROWS_AS(render("{{ '{0}{1}'.format(1) }}", "{}"), jinja::TemplateError);
  CHECK_THROWS_AS(render("{{ '%' % 1 }}", "{}"), jinja::TemplateError);
  CHECK_THROWS_AS(jinja::Template("{{ '\\u12' }}"), jinja::TemplateError);
  CHECK_THROWS_AS(jinja::Template("{{ '\\xZ1' }}"), jinja::TemplateError);
  CHECK_THROWS_AS(jinja::Template("{% macro m( %}{% endmacro %}"), jinja::TemplateError);
  CHECK_THROWS_AS(jinja::Template("{% call nope %}x{% endcall %}"), jinja::TemplateError);
  CHECK_THROWS_AS(render("{% set a, b = [1] %}", "{}"), jinja::TemplateError);
  CHECK_THROWS_AS(render("{{ 1 < 'a' < 2 }}", "{}"), jinja::TemplateError);
}

// Found by the jinja fuzz target (tests/fuzz/corpus/jinja/crash-*): each escaped the parser
// or the renderer as a standard exception (a crash of `serve` at load, a 500 per request).
TEST_CASE("malformed escapes, huge indices and non-finite numbers are template errors or values, not crashes") {
  CHECK_THROWS_WITH(jinja::Template("{{ '\\uZZZZ' }}"), Catch::Contains("four hex digits"));
  CHECK_THROWS_WITH(jinja::Template("{{ '\\u12' }}"), Catch::Contains("four hex digits"));
  CHECK_THROWS_WITH(jinja::Template("{{ '\\u+1ab' }}"), Catch::Contains("four hex digits"));
  CHECK_THROWS_WITH(jinja::Template("{{ '\\ud83d' }}"), Catch::Contains("surrogate"));
  CHECK(render("{{ '\\u00e9\\ud83d\\ude42' }}", "{}") == "\u00e9\U0001F642");
  CHECK(render("{{ [1, 2]['99999999999999999999999'] is defined }}", "{}") == "False");
  CHECK(render("{{ (1e308 * 10) | int }}|{{ 1e300 | int }}", "{}") == "0|9223372036854775807");
  // Integers past 64 bits (Python's never overflow): a clean error, not undefined behaviour.
  CHECK_THROWS_WITH(render("{{ 7 ** 23 }}", "{}"), Catch::Contains("integer overflow"));
  CHECK_THROWS_WITH(render("{{ 9223372036854775807 + 1 }}", "{}"), Catch::Contains("integer overflow"));
  CHECK_THROWS_WITH(render("{{ 4611686018427387904 * 2 }}", "{}"), Catch::Contains("integer overflow"));
  CHECK_THROWS_WITH(render("{{ -(-9223372036854775807 - 1) }}", "{}"), Catch::Contains("integer overflow"));
  CHECK_THROWS_WITH(render("{{ (-9223372036854775807 - 1) | abs }}", "{}"), Catch::Contains("integer overflow"));
  CHECK(render("{{ 2 ** 62 }}|{{ (-1) ** 1000000000000000001 }}|{{ 1 ** 999999999999 }}|{{ 3 ** 0 }}", "{}") ==
        "4611686018427387904|-1|1|1");
  CHECK(render("{{ 'ab' * 3 }}|{{ '' * 4611686018427387904 }}|{{ 'x' * -2 }}", "{}") == "ababab||");
  CHECK_THROWS_WITH(render("{{ 'ab' * 4611686018427387904 }}", "{}"), Catch::Contains("too large"));
}

TEST_CASE("template errors give the line and the column") {
  CHECK_THROWS_WITH(jinja::Template("ab\ncd {% include 'm.jinja' %}"),
                    Catch::Contains("line 2, column 7") && Catch::Contains("unsupported tag 'include'"));
  CHECK_THROWS_WITH(jinja::Template("{{ 'é' }}\n  {{ x | }}"), Catch::Contains("line 2, column 10: expected a name"));
  CHECK_THROWS_WITH(jinja::Template("x\n\n   {{ 'open"), Catch::Contains("line 3, column 7: unterminated string"));
  CHECK_THROWS_WITH(render("{{ 1 }}\n{{ x | nosuchfilter }}", "{}"),
                    Catch::Contains("line 2, column 4") && Catch::Contains("unknown filter 'nosuchfilter'"));
}

TEST_CASE("chat templates are validated when loaded, by rendering probe conversations") {
  // Parses, but fails on any conversation: caught at load, with where and what.
  CHECK_THROWS_WITH(ChatTemplate::from_source("{% for m in messages %}\n{{ m.content | shout }}{% endfor %}", "<s>",
                                              "</s>", "t.jinja"),
                    Catch::Contains("t.jinja") && Catch::Contains("line 2, column 4") &&
                        Catch::Contains("unknown filter 'shout'"));
  // Fails only in the system branch: still caught (the first probe has a system message).
  CHECK_THROWS_WITH(ChatTemplate::from_source(
                        "{% for m in messages %}{% if m.role == 'system' %}{{ m.content.nope() }}{% endif %}"
                        "{{ m.content }}{% endfor %}",
                        "", "", "sys.jinja"),
                    Catch::Contains("sys.jinja") && Catch::Contains("line 1"));
  CHECK_THROWS_WITH(ChatTemplate::from_source("{% include 'm.jinja' %}", "", "", "m.jinja"),
                    Catch::Contains("m.jinja: chat template line 1, column 4: unsupported tag"));
  // A template refusing everything is useless: fail, quoting its refusal.
  CHECK_THROWS_WITH(ChatTemplate::from_source("{{ raise_exception('never') }}", "", "", "r.jinja"),
                    Catch::Contains("rejects every probe conversation: never"));
  // Refusing some shapes on purpose (no system role, as Mistral's templates do) is fine.
  ChatTemplate no_system = ChatTemplate::from_source(
      "{% if messages[0].role == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
      "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}",
      "", "", "nosys.jinja");
  CHECK(no_system.has_template());
  // Every real template in the shared tokenizers passes.
  for (const char* name : {"llama3", "qwen3"}) {
    const std::string dir = test::tokenizer_path(name);
    auto tok = load_tokenizer(dir);
    CHECK_NOTHROW(ChatTemplate::load(dir, "", *tok));
  }
}

TEST_CASE("--chat-template takes an inline template when the argument is no file") {
  const std::string dir = test::model_path("tinystories-656k");
  auto tok = load_tokenizer(dir);
  ChatTemplate inline_t = ChatTemplate::load(dir, "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}", *tok);
  CHECK(inline_t.origin() == "--chat-template (inline)");
  auto msgs = boost::json::parse(R"([{"role":"user","content":"Hi"}])");
  CHECK(inline_t.render(msgs.as_array(), true) == "<user>Hi");
  CHECK_THROWS_WITH(ChatTemplate::load(dir, dir + "/no-such-template.jinja", *tok), Catch::Contains("cannot read"));
}
