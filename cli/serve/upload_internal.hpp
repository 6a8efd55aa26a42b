// Turns the parts of a TF.js upload (model.save('http://...'): a part
// "model.json" and a part per weights file its manifest names, normally
// "model.weights.bin") into ModelArtifacts ready to save.
//
// Thread-safety: one thread at a time. Ownership: the weight bytes are
// copied once, from the socket's buffer into blocks that become the
// artifacts' weight Buffers; nothing is joined or copied again.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "multipart_internal.hpp"
#include "stowage/artifacts.hpp"
#include "stowage/digest.hpp"

namespace stowage::serve {

class UploadCollector final : public MultipartHandler {
 public:
  // `source` names the upload in messages ("upload of model 'm'").
  // size_hint (e.g. the Content-Length) sizes the first weights block so a
  // one-part upload lands in one Buffer.
  UploadCollector(std::string source, uint64_t max_model_json_bytes, uint64_t size_hint = 0);

  void on_part_begin(const PartHeaders& headers) override;
  void on_part_data(std::string_view bytes) override;
  void on_part_end() override;

  // The artifacts, once the parser has finished: model.json parsed, the
  // weight parts joined in manifest order (as Buffers, without a copy) and
  // their sizes checked against the weight specs. Throws
  // Error(kInvalidArgument) when model.json is missing or bad, when a
  // weights file the manifest names was not sent, or a part was sent that
  // it does not name; Error(kDataLoss) when the bytes do not match the specs
  // or a weights file does not match the digest model.json records for it.
  ModelArtifacts take_artifacts();

 private:
  struct Part {
    WeightData blocks;
    std::vector<uint8_t> current;
    uint64_t size = 0;
    Sha256 hash;         // of the bytes as they arrive
    std::string sha256;  // set at the part's end
  };
  void seal(Part& part);

  std::string source_;
  uint64_t max_json_;
  uint64_t size_hint_;
  bool have_json_ = false;
  std::string json_;
  std::map<std::string, Part> parts_;  // weight parts by field name
  Part* open_ = nullptr;               // the weight part being received
  bool in_json_ = false;
};

// "./model.weights.bin" -> "model.weights.bin": a manifest path as the file
// name it stands for.
std::string manifest_file_name(std::string_view path);

}  // namespace stowage::serve
