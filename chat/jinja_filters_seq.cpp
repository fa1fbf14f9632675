// Jinja2 3.1's filters over collections: dictsort, groupby, unique, map, select / reject,
// selectattr / rejectattr, batch, slice. Attributes may be dotted paths ("a.b.0"), keys
// compare without case unless case_sensitive, as in Jinja2.
#include <algorithm>

#include "chat/jinja_builtins.h"

namespace troupe::jinja::detail {

namespace {

// Jinja2's ignore_case: strings lowercased for comparing, everything else as is.
Value folded(const Value& v, bool case_sensitive) {
  return v.is_string() && !case_sensitive ? Value(change_case(v.as_string(), CaseChange::Lower)) : v;
}

// The arguments after the first `skip` positional ones (select('gt', 3): 3 goes to the test).
Args tail(const Args& a, size_t skip) {
  Args out;
  for (size_t i = skip; i < a.pos.size(); ++i) out.pos.push_back(a.pos[i]);
  return out;
}

}  // namespace

Value attribute_path(const Value& item, const Value& attribute, SrcPos line) {
  if (!attribute.is_string()) return get_item(item, attribute, line);
  Value cur = item;
  const std::string& path = attribute.as_string();
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    const bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    cur = get_item(cur, digits ? Value(int64_t(std::stoll(part))) : Value(part), line);
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

std::optional<Value> apply_collection_filter(const std::string& f, const Value& v, const Args& a, SrcPos line) {
  if (f == "dictsort") {
    if (!v.is_dict()) error(line, "dictsort expects a mapping");
    const bool case_sensitive = a.or_default(0, "case_sensitive", Value(false)).truthy();
    const std::string by = a.or_default(1, "by", Value("key")).str();
    const bool reverse = a.or_default(2, "reverse", Value(false)).truthy();
    if (by != "key" && by != "value") error(line, "dictsort: by must be 'key' or 'value'");
    List items;
    for (const auto& [k, x] : v.as_dict().items) items.emplace_back(List{Value(k), x});
    const size_t pos = by == "key" ? 0 : 1;
    std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
      const Value kx = folded(x.as_list()[pos], case_sensitive), ky = folded(y.as_list()[pos], case_sensitive);
      return reverse ? value_less(ky, kx, line) : value_less(kx, ky, line);
    });
    return Value(std::move(items));
  }
  if (f == "groupby") {
    const Value attribute = a.or_default(0, "attribute");
    const Value dflt = a.or_default(1, "default");
    const bool case_sensitive = a.or_default(2, "case_sensitive", Value(false)).truthy();
    auto key = [&](const Value& item) {
      Value k = attribute_path(item, attribute, line);
      return k.is_undefined() ? dflt : k;
    };
    List items = iterate(v, line);
    std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
      return value_less(folded(key(x), case_sensitive), folded(key(y), case_sensitive), line);
    });
    // Each group is [grouper, list] (Jinja2's _GroupTuple; get_item maps .grouper / .list).
    List groups;
    for (size_t i = 0; i < items.size();) {
      const Value k = folded(key(items[i]), case_sensitive);
      List members;
      size_t j = i;
      while (j < items.size() && folded(key(items[j]), case_sensitive) == k) members.push_back(items[j++]);
      groups.emplace_back(List{key(items[i]), Value(std::move(members))});
      i = j;
    }
    return Value(std::move(groups));
  }
  if (f == "unique") {
    const bool case_sensitive = a.or_default(0, "case_sensitive", Value(false)).truthy();
    const Value attribute = a.or_default(1, "attribute");
    List out, seen;
    for (const auto& item : iterate(v, line)) {
      Value k = folded(attribute.is_undefined() ? item : attribute_path(item, attribute, line), case_sensitive);
      if (std::find(seen.begin(), seen.end(), k) != seen.end()) continue;
      seen.push_back(std::move(k));
      out.push_back(item);
    }
    return Value(std::move(out));
  }
  if (f == "map") {
    List out;
    const Value* attribute = nullptr;
    for (const auto& [k, x] : a.kw)
      if (k == "attribute") attribute = &x;
    if (!attribute && a.pos.empty()) error(line, "map needs a filter name or attribute=");
    for (const auto& item : iterate(v, line)) {
      if (attribute) {
        Value x = attribute_path(item, *attribute, line);
        out.push_back(x.is_undefined() ? a.or_default(99, "default") : x);
      } else {
        Args rest = tail(a, 1);
        rest.kw = a.kw;
        out.push_back(apply_filter(a.pos[0].str(), item, rest, line));
      }
    }
    return Value(std::move(out));
  }
  if (f == "selectattr" || f == "rejectattr" || f == "select" || f == "reject") {
    const bool by_attr = f == "selectattr" || f == "rejectattr";
    const bool keep_match = f == "selectattr" || f == "select";
    const size_t test_at = by_attr ? 1 : 0;
    List out;
    for (const auto& item : iterate(v, line)) {
      const Value subject = by_attr ? attribute_path(item, a.or_default(0, "attribute"), line) : item;
      const bool r = test_at < a.pos.size() ? apply_test(a.pos[test_at].str(), subject, tail(a, test_at + 1), line)
                                            : subject.truthy();
      if (r == keep_match) out.push_back(item);
    }
    return Value(std::move(out));
  }
  if (f == "batch" || f == "slice") {
    const Value n = a.or_default(0, f == "batch" ? "linecount" : "slices");
    if (!n.is_int() || n.as_int() <= 0) error(line, f + " expects a positive count");
    const Value fill = a.or_default(1, "fill_with");
    const List items = iterate(v, line);
    List out;
    if (f == "batch") {
      for (size_t i = 0; i < items.size(); i += size_t(n.as_int())) {
        List row(items.begin() + long(i), items.begin() + long(std::min(items.size(), i + size_t(n.as_int()))));
        if (!fill.is_undefined() && !fill.is_none() && int64_t(row.size()) < n.as_int()) {
          charge_padding(n.as_int() - int64_t(row.size()), line);
          row.resize(size_t(n.as_int()), fill);
        }
        out.emplace_back(std::move(row));
      }
    } else {  // n columns, the first `extra` one longer (Jinja2's slice)
      const size_t slices = size_t(n.as_int()), per = items.size() / slices, extra = items.size() % slices;
      size_t offset = 0;
      for (size_t s = 0; s < slices; ++s) {
        const size_t len = per + (s < extra ? 1 : 0);
        List col(items.begin() + long(offset), items.begin() + long(offset + len));
        offset += len;
        if (!fill.is_undefined() && !fill.is_none() && s >= extra && extra > 0) col.push_back(fill);
        out.emplace_back(std::move(col));
      }
    }
    return Value(std::move(out));
  }
  return std::nullopt;
}

}  // namespace troupe::jinja::detail
