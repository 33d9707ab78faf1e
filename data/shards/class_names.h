#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace facetrain::data {

// classes.tsv of a dataset folder: "LABEL<TAB>NAME" per line, labels 0, 1, … in order, NAME the
// identity's source folder. A name may hold any bytes a file system allows: backslash, tab,
// newline, carriage return and the other control bytes (0x00-0x1F, 0x7F) are written as \\, \t,
// \n, \r and \xHH, so every name reads back exactly.
std::string class_names_tsv(const std::vector<std::string>& names);

// The names of classes.tsv text; DataError naming `source`, the line and what was expected (a
// label out of order, no tab, no final newline). A byte-order mark and CRLF line ends are
// accepted, and a backslash that starts no escape is itself (as files written before names were
// escaped hold it).
std::vector<std::string> parse_class_names(std::string_view text, const std::string& source);

// parse_class_names of the file.
std::vector<std::string> read_class_names(const std::filesystem::path& file);

}  // namespace facetrain::data
