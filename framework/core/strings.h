#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace facetrain {

// Levenshtein edit distance (insertions, deletions, substitutions each cost 1).
std::size_t edit_distance(std::string_view a, std::string_view b);

// The candidate nearest to `word` by edit distance; ties go to the earlier candidate.
// Empty when there are no candidates.
std::string nearest_word(std::string_view word, const std::vector<std::string>& candidates);

// `items` joined by `sep`.
std::string join(const std::vector<std::string>& items, std::string_view sep);

// Whether `s` ends with `suffix`.
inline bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// The length of the well-formed UTF-8 sequence starting at s[i] (1 to 4), or 0 when the bytes
// there are not one (a stray continuation byte, an overlong form, a surrogate, a truncated
// sequence, a code point past U+10FFFF).
std::size_t utf8_sequence_length(std::string_view s, std::size_t i);

// Whether all of `s` is well-formed UTF-8.
bool is_utf8(std::string_view s);

// Whether `name` can be one file's name inside a folder: 1 to 255 bytes (NAME_MAX), no '/' and
// no NUL, not "." or "..".
bool is_plain_file_name(std::string_view name);

}  // namespace facetrain
