#include "served_model.h"

#include "chat/chat_template.h"
#include "fuzz_support.h"
#include "model/tokenizer_loader.h"

namespace troupe::fuzz {

namespace {
constexpr const char* kChatMl =
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}"
    "{% if m.tool_calls %}{% for c in m.tool_calls %}<tool_call>{{ c.function.name }} "
    "{{ c.function.arguments | tojson }}</tool_call>{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if tools %}{{ tools | tojson }}{% endif %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

struct Served {
  std::unique_ptr<Tokenizer> tok = load_tokenizer(model_path("stories260k/stories260K.gguf"));
  ChatTemplate chat = ChatTemplate::from_source(kChatMl, "<s>", "</s>", "fuzz ChatML");
  ModelInfo info;
  Served() {
    info.name = "stories260K";
    info.max_model_len = 512;
    info.vocab_size = tok->vocab_size();
    info.tokenizer = tok.get();
    info.chat = &chat;
  }
};
}  // namespace

const ModelInfo& served_model() {
  static const Served s;
  return s.info;
}

}  // namespace troupe::fuzz
