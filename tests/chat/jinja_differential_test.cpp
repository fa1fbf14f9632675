// Differential test: Python's Jinja2 (Debian python3-jinja2, configured as Hugging Face
// transformers renders chat templates) against chat/jinja*.cpp, run live. The reference
// side renders every chat template in the shared tokenizers over several conversations
// and every snippet of data/jinja_corpus.txt; both must produce the same bytes, or both
// raise (raise_exception with the same message).
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "chat/jinja.h"
#include "test_util.h"

using namespace troupe;

namespace {

struct Outcome {
  bool ok = false;
  bool raised = false;  // raise_exception()
  std::string text;     // output, or the error message
};

Outcome render_here(const std::string& source, const boost::json::value& context) {
  Outcome o;
  try {
    jinja::Value ctx = jinja::from_json(context);
    o.text = jinja::Template(source).render(ctx.as_dict());
    o.ok = true;
  } catch (const jinja::RaisedError& e) {
    o.raised = true;
    o.text = e.what();
  } catch (const jinja::TemplateError& e) {
    o.text = e.what();
  }
  return o;
}

}  // namespace

TEST_CASE("Jinja renders every shared chat template and the snippet corpus exactly as Python's Jinja2") {
  const std::string dir = test::temp_dir("jinja_diff");
  const std::string ref = dir + "/reference.json";
  const auto run = test::run_command("python3 " + test::shell_quote(test::source_path("tests/chat/data/jinja_reference.py")) + " " +
                                     test::shell_quote(test::tokenizer_path("")) + " " +
                                     test::shell_quote(test::source_path("tests/chat/data/jinja_corpus.txt")) + " > " +
                                     test::shell_quote(ref));
  INFO(run.out);
  REQUIRE(run.status == 0);  // python3-jinja2 comes with scripts/install-deps.sh
  const auto root = boost::json::parse(test::read_file(ref));
  const auto& cases = root.at("cases").as_array();
  int templates = 0, snippets = 0, agreed = 0, raised = 0;
  for (const auto& cv : cases) {
    const auto& c = cv.as_object();
    const std::string name(c.at("name").as_string());
    const std::string source(c.at("template").as_string());
    (name.starts_with("corpus/") ? snippets : templates)++;
    const Outcome got = render_here(source, c.at("context"));
    INFO("case " << name << "\n--- template ---\n" << source << "\n--- troupe ---\n" << got.text);
    if (c.at("expected").is_string()) {
      const std::string want(c.at("expected").as_string());
      INFO("--- jinja2 ---\n" << want);
      CHECK(got.ok);
      CHECK(got.text == want);
      agreed += got.ok && got.text == want;
    } else {
      const std::string err(c.at("error").as_string());
      INFO("--- jinja2 raised ---\n" << err);
      CHECK_FALSE(got.ok);
      // raise_exception(msg) reaches the client: the same message. Other errors (syntax,
      // types) only need to be errors, each engine words them its own way.
      if (err.starts_with("TemplateError: ")) {
        CHECK(got.raised);
        CHECK(got.text == err.substr(15));
        ++raised;
      }
      agreed += !got.ok;
    }
  }
  CHECK(templates >= 60);  // 2 shared templates x 5 conversations x 6 variants
  CHECK(snippets >= 150);
  CHECK(raised >= 2);
  CHECK(agreed == int(cases.size()));
}
