// Byte-level BPE on edge cases the fixture does not cover (Unicode white space, NFC,
// adjacent special tokens, literal byte-alphabet characters, control bytes). Expected ids
// come from Hugging Face's tokenizers.js 0.2.0 (an independent implementation) run on the
// same tokenizer.json files with add_special_tokens=false.
#include <catch2/catch.hpp>

#include "fixtures.h"
#include "tokenizer/tokenizer.h"

namespace {

using namespace std::string_literals;  // "\x00..."s keeps embedded NULs

struct Case {
  std::string text;
  std::vector<int32_t> llama3, qwen3;
};

const std::vector<Case>& cases() {
  static const std::vector<Case> all = {
    {"Hello\xC2\xA0world"s,
     {9906, 4194, 14957},
     {9707, 4102, 14615}},
    {"a\xE3\x80\x80" "b"s,
     {64, 23249, 65},
     {64, 22441, 65}},
    {"x\xC2\x85y"s,
     {87, 116360, 88},
     {87, 126, 227, 88}},
    {"line\xE2\x80\xA8sep"s,
     {1074, 378, 101, 29136},
     {1056, 378, 101, 28036}},
    {"   \n\n   leading and\t\ttabs  "s,
     {35033, 256, 6522, 323, 197, 3324, 3518, 256},
     {33933, 256, 6388, 323, 197, 3244, 3435, 256}},
    {"I'M DON'T WE'LL You'Re"s,
     {40, 28703, 45373, 17773, 20255, 6, 4178, 1472, 50527},
     {40, 27603, 44273, 17323, 19677, 6, 4086, 1446, 49427}},
    {"12345678901234567890"s,
     {4513, 10961, 16474, 11531, 12901, 17458, 1954},
     {16, 17, 18, 19, 20, 21, 22, 23, 24, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 15}},
    {"\xD9\xA3\xD9\xA4\xD9\xA5 and \xE2\x91\xA0\xE2\x91\xA1"s,
     {117413, 124079, 124043, 323, 220, 118075, 119560},
     {149, 96, 149, 97, 149, 98, 323, 220, 48312, 254, 48312, 94}},
    {"<|im_start|>system\nYou are<|im_end|>\n"s,
     {27, 91, 318, 5011, 91, 29, 9125, 198, 2675, 527, 27, 91, 318, 6345, 91, 397},
     {151644, 8948, 198, 2610, 525, 151645, 198}},
    {"<|begin_of_text|><|begin_of_text|>x"s,
     {128000, 128000, 87},
     {27, 91, 7265, 3575, 4326, 91, 1784, 91, 7265, 3575, 4326, 91, 29, 87}},
    {"<|eot_id|> trailing"s,
     {128009, 28848},
     {27, 91, 68, 354, 842, 91, 29, 27748}},
    {"cafe\xCC\x81 vs caf\xC3\xA9"s,
     {936, 1897, 54939, 6296, 53050},
     {924, 58858, 6165, 51950}},
    {"\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7 family"s,
     {9468, 239, 101, 102470, 9468, 239, 102, 102470, 9468, 239, 100, 3070},
     {145367, 378, 235, 145233, 378, 235, 145665, 2997}},
    {"\xF0\x9F\x87\xAB\xF0\x9F\x87\xB7\xF0\x9F\x87\xA9\xF0\x9F\x87\xAA"s,
     {9468, 229, 104, 9468, 229, 115, 9468, 229, 102, 9468, 229, 103},
     {145919, 145070, 145862, 145336}},
    {"\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xAE\xE3\x83\x86\xE3\x82\xAD\xE3\x82\xB9\xE3\x83\x88" "123"s,
     {102433, 102158, 16144, 57933, 62903, 71634, 4513},
     {101059, 102819, 15767, 56833, 61803, 70534, 16, 17, 18}},
    {"def f(x):\n\treturn x**2\n\n\n"s,
     {755, 282, 2120, 997, 862, 865, 334, 17, 1432},
     {750, 282, 2075, 982, 853, 856, 334, 17, 1406}},
    {"\xC4\xA0\xC4\x8A literal byte chars"s,
     {119741, 128, 232, 24016, 5027, 23861},
     {144242, 148848, 23141, 4922, 23000}},
    {"\x00\x01\x7F"s,
     {188, 189, 221},
     {188, 189, 221}},
    {"tool <tool_call>{\"a\":1}</tool_call> done"s,
     {14506, 366, 14506, 13735, 89963, 64, 794, 16, 5474, 14506, 13735, 29, 2884},
     {14172, 220, 151657, 4913, 64, 788, 16, 92, 151658, 2814}},
    {"a  b   c    d"s,
     {64, 220, 293, 256, 272, 262, 294},
     {64, 220, 293, 256, 272, 262, 294}},
    {"\n \n \n"s,
     {27907, 720},
     {26809, 715}},
    {"trailing spaces   "s,
     {376, 14612, 12908, 262},
     {376, 14277, 12621, 262}},
    {"\xE2\x96\x81meta\xE2\x96\x81space"s,
     {10634, 223, 5607, 10634, 223, 8920},
     {10417, 223, 5490, 10417, 223, 8746}},
    {"\xE0\xB8\xA0\xE0\xB8\xB2\xE0\xB8\xA9\xE0\xB8\xB2\xE0\xB9\x84\xE0\xB8\x97\xE0\xB8\xA2 \xE0\xA4\xB9\xE0\xA4\xBF\xE0\xA4\xA8\xE0\xA5\x8D\xE0\xA4\xA6\xE0\xA5\x80 \xD8\xA7\xD9\x84\xD8\xB9\xD8\xB1\xD8\xA8\xD9\x8A\xD8\xA9"s,
     {109086, 21437, 102938, 85410, 100556, 101102, 44747, 110356},
     {127382, 125451, 84310, 42311, 101, 30484, 99, 43647, 129071}},
  };
  return all;
}

}  // namespace

TEST_CASE("byte-level BPE edge cases match tokenizers.js", "[tokenizer][byte-level]") {
  const auto& l3 = troupe::test::fixture_tokenizer("llama3");
  const auto& q3 = troupe::test::fixture_tokenizer("qwen3");
  for (const auto& c : cases()) {
    INFO(c.text);
    CHECK(l3.encode(c.text) == c.llama3);
    CHECK(q3.encode(c.text) == c.qwen3);
    CHECK(l3.decode(c.llama3, false) == c.text);
  }
}
