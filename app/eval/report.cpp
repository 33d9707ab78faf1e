#include "app/eval/report.h"

#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "framework/core/atomic_file.h"

namespace facetrain::eval {
namespace {

nlohmann::json number(double x) {
  return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr);
}

nlohmann::json to_json(const VerificationEntry& e) {
  const auto& r = e.result;
  nlohmann::json tar = nlohmann::json::array();
  for (const auto& [far, value] : r.tar_at_far) {
    tar.push_back({{"far", number(far)}, {"tar", number(value)}});
  }
  return {{"name", e.name},
          {"file", e.file.string()},
          {"num_pairs", r.num_pairs},
          {"num_same", r.num_same},
          {"accuracy", number(r.accuracy)},
          {"accuracy_std", number(r.accuracy_std)},
          {"best_threshold", number(r.best_threshold)},
          {"val_at_far_1e3", number(r.val_at_far_1e3)},
          {"val_std", number(r.val_std)},
          {"far_at_val", number(r.far_at_val)},
          {"tar_at_far", tar},
          {"auc", number(r.auc)},
          {"eer", number(r.eer)},
          {"xnorm", number(r.xnorm)},
          {"roc_points", r.roc.fpr.size()},
          {"roc_csv",
           e.roc_csv.empty() ? nlohmann::json(nullptr) : nlohmann::json(e.roc_csv.string())}};
}

nlohmann::json to_json(const OpenSetResult& r) {
  nlohmann::json ranks = nlohmann::json::object(), tpir = nlohmann::json::array();
  for (const auto& [k, rate] : r.rank) ranks[fmt::format("rank{}", k)] = number(rate);
  for (const auto& t : r.tpir) {
    tpir.push_back(
        {{"fpir", t.fpir}, {"tpir", number(t.tpir)}, {"threshold", number(t.threshold)}});
  }
  return {{"gallery", r.gallery},
          {"gallery_templates", r.gallery_templates},
          {"mated_probes", r.mated_probes},
          {"nonmated_probes", r.nonmated_probes},
          {"rank", ranks},
          {"tpir_at_fpir", tpir}};
}

nlohmann::json to_json(const IjbEntry& e) {
  const auto& r = e.result;
  nlohmann::json tar = nlohmann::json::array(), one_to_n = nlohmann::json::array();
  for (const auto& t : r.tar) {
    tar.push_back({{"far", t.far},
                   {"tar", number(t.tar_closest)},
                   {"tar_at_most_far", number(t.tar_at_most)}});
  }
  for (const auto& g : r.identification) one_to_n.push_back(to_json(g));
  return {
      {"name", r.name},
      {"root", e.root.string()},
      {"images", r.images},
      {"templates", r.templates},
      {"pairs", r.pairs},
      {"genuine_pairs", r.genuine_pairs},
      {"tar_at_far", tar},
      {"auc", number(r.auc)},
      {"roc_points", r.roc.fpr.size()},
      {"roc_csv", e.roc_csv.empty() ? nlohmann::json(nullptr) : nlohmann::json(e.roc_csv.string())},
      {"identification", one_to_n},
      {"embed_seconds", e.embed_seconds},
      {"images_per_second",
       e.embed_seconds > 0 ? number(r.images / e.embed_seconds) : nlohmann::json(nullptr)}};
}

}  // namespace

std::string report_json(const EvalReport& report) {
  nlohmann::json j = {{"format", "facetrain-eval-report"},
                      {"version", 1},
                      {"network", report.network},
                      {"weights", report.weights},
                      {"embedding_size", report.embedding_size},
                      {"batch_size", report.batch_size},
                      {"world_size", report.world_size},
                      {"verification", nlohmann::json::array()},
                      {"identification", nullptr},
                      {"ijb", nullptr}};
  for (const auto& e : report.verification) j["verification"].push_back(to_json(e));
  if (report.identification) {
    const auto& id = *report.identification;
    const auto& r = id.result;
    j["identification"] = {{"gallery", id.gallery.string()},
                           {"probe", id.probe.string()},
                           {"num_gallery", r.num_gallery},
                           {"num_probes", r.num_probes},
                           {"num_probes_without_match", r.num_probes_without_match},
                           {"rank1", number(r.rank1)},
                           {"rank5", number(r.rank5)},
                           {"map", number(r.mean_average_precision)}};
  }
  if (report.ijb) j["ijb"] = to_json(*report.ijb);
  // JSON holds Unicode: a path of other bytes is shown with U+FFFD where they were.
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

void write_report(const std::filesystem::path& path, const EvalReport& report) {
  write_file_atomic(path, report_json(report));
}

std::string roc_csv(const RocCurve& roc) {
  std::string out = "threshold,fpr,tpr\n";
  for (std::size_t i = 0; i < roc.fpr.size(); ++i) {
    out += fmt::format("{:.17g},{:.17g},{:.17g}\n", roc.thresholds[i], roc.fpr[i], roc.tpr[i]);
  }
  return out;
}

void write_roc_csv(const std::filesystem::path& path, const RocCurve& roc) {
  write_file_atomic(path, roc_csv(roc));
}

}  // namespace facetrain::eval
