#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "app/eval/identification.h"
#include "app/eval/ijb.h"
#include "app/eval/verification.h"

namespace facetrain::eval {

// One verification set's entry in a report.
struct VerificationEntry {
  std::string name;               // the set's file stem, e.g. "lfw"
  std::filesystem::path file;     // the set as given
  std::filesystem::path roc_csv;  // where its ROC was written; empty when it was not
  VerificationResult result;
};

// The identification entry of a report.
struct IdentificationEntry {
  std::filesystem::path gallery;
  std::filesystem::path probe;
  IdentificationResult result;
};

// The IJB entry of a report.
struct IjbEntry {
  std::filesystem::path root;     // the benchmark's folder
  std::filesystem::path roc_csv;  // where its 1:1 ROC was written; empty when it was not
  double embed_seconds = 0;       // embedding every image (and its mirror), all ranks together
  IjbResult result;
};

// What `facetrain eval` measured, as written to its JSON report (schema: docs/evaluation.md).
struct EvalReport {
  std::string network;
  std::string weights;
  std::int64_t embedding_size = 0;
  std::int64_t batch_size = 0;
  int world_size = 1;
  std::vector<VerificationEntry> verification;
  std::optional<IdentificationEntry> identification;
  std::optional<IjbEntry> ijb;
};

// The report as pretty-printed JSON ("format": "facetrain-eval-report", "version": 1). The ROC
// curves are not in it (see roc_csv); non-finite numbers become null.
std::string report_json(const EvalReport& report);

// Writes report_json(report) to `path` atomically (write_file_atomic).
void write_report(const std::filesystem::path& path, const EvalReport& report);

// The ROC as CSV: a header "threshold,fpr,tpr", then one line per point, numbers with 17
// significant digits.
std::string roc_csv(const RocCurve& roc);

// Writes roc_csv(roc) to `path` atomically.
void write_roc_csv(const std::filesystem::path& path, const RocCurve& roc);

}  // namespace facetrain::eval
