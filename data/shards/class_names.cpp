#include "data/shards/class_names.h"

#include <fmt/format.h>

#include <charconv>

#include "framework/core/error.h"
#include "framework/core/input_file.h"

namespace facetrain::data {
namespace {

std::string escaped(std::string_view name) {
  std::string out;
  for (const char ch : name) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7F) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += ch;
    }
  }
  return out;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string unescaped(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\') {
      out += text[i];
      continue;
    }
    const char e = i + 1 < text.size() ? text[i + 1] : '\0';
    if (e == '\\' || e == 't' || e == 'n' || e == 'r') {
      out += e == '\\' ? '\\' : e == 't' ? '\t' : e == 'n' ? '\n' : '\r';
      i += 1;
    } else if (e == 'x' && i + 3 < text.size() && hex_digit(text[i + 2]) >= 0 &&
               hex_digit(text[i + 3]) >= 0) {
      out += static_cast<char>(hex_digit(text[i + 2]) * 16 + hex_digit(text[i + 3]));
      i += 3;
    } else {
      out += '\\';  // no escape: a backslash as files written before escaping hold it
    }
  }
  return out;
}

}  // namespace

std::string class_names_tsv(const std::vector<std::string>& names) {
  std::string out;
  for (std::size_t label = 0; label < names.size(); ++label) {
    out += fmt::format("{}\t{}\n", label, escaped(names[label]));
  }
  return out;
}

std::vector<std::string> parse_class_names(std::string_view text, const std::string& source) {
  std::vector<std::string> names;
  std::size_t line = 0;
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);  // a byte-order mark
  while (!text.empty()) {
    ++line;
    const std::size_t end = text.find('\n');
    if (end == std::string_view::npos) {
      throw DataError(fmt::format("{}:{}: the last line has no newline (a cut file?)", source, line));
    }
    std::string_view row = text.substr(0, end);
    // A CR before the newline (an editor's CRLF): names hold theirs escaped.
    if (!row.empty() && row.back() == '\r') row.remove_suffix(1);
    text.remove_prefix(end + 1);
    const std::string where = fmt::format("{}:{}", source, line);
    const std::size_t tab = row.find('\t');
    std::size_t label = 0;
    const auto [next, error] = std::from_chars(row.data(), row.data() + row.size(), label);
    if (tab == std::string_view::npos || error != std::errc() || next != row.data() + tab ||
        label != names.size()) {
      throw DataError(fmt::format("{}: expected \"{}<TAB>name\"", where, names.size()));
    }
    names.push_back(unescaped(row.substr(tab + 1)));
  }
  return names;
}

std::vector<std::string> read_class_names(const std::filesystem::path& file) {
  // A name per class: 1 GiB is some ten million names of a hundred bytes.
  return parse_class_names(
      InputFile::open_or_throw<DataError>(file).read_all<DataError>(std::int64_t{1} << 30,
                                                                    "a classes.tsv"),
      file.string());
}

}  // namespace facetrain::data
