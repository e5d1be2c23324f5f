#include "common/data/dataset.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "tests/support/test_util.h"

namespace r2f {
namespace {

using r2f::testing::TempDir;
using r2f::testing::WriteFile;
using ::testing::HasSubstr;

std::string BigEndian(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

std::string IdxImages(uint32_t n, uint32_t h, uint32_t w, const std::vector<uint8_t>& pixels) {
  return BigEndian(0x803) + BigEndian(n) + BigEndian(h) + BigEndian(w) +
         std::string(pixels.begin(), pixels.end());
}

std::string IdxLabels(const std::vector<uint8_t>& labels) {
  return BigEndian(0x801) + BigEndian(static_cast<uint32_t>(labels.size())) +
         std::string(labels.begin(), labels.end());
}

void WriteGzip(const std::string& path, const std::string& contents) {
  gzFile gz = gzopen(path.c_str(), "wb");
  ASSERT_NE(gz, nullptr) << path;
  ASSERT_EQ(gzwrite(gz, contents.data(), static_cast<unsigned>(contents.size())),
            static_cast<int>(contents.size()));
  ASSERT_EQ(gzclose(gz), Z_OK);
}

// Three 2x4 images with distinct pixels, labels 7, 0, 9.
struct SmallIdx {
  std::vector<uint8_t> pixels;
  std::vector<uint8_t> labels = {7, 0, 9};
  SmallIdx() {
    for (int i = 0; i < 3 * 2 * 4; ++i) pixels.push_back(static_cast<uint8_t>(i * 11 % 256));
  }
  std::string images() const { return IdxImages(3, 2, 4, pixels); }
  std::string label_file() const { return IdxLabels(labels); }
};

void ExpectSmallIdx(const Result<Dataset>& ds, const SmallIdx& want) {
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  EXPECT_EQ(ds->size(), 3u);
  EXPECT_EQ(ds->channels, 1u);
  EXPECT_EQ(ds->height, 2u);
  EXPECT_EQ(ds->width, 4u);
  EXPECT_EQ(ds->num_classes, 10u);
  EXPECT_EQ(ds->image_bytes(), 8u);
  EXPECT_EQ(ds->images, want.pixels);
  EXPECT_EQ(ds->labels, want.labels);
  EXPECT_EQ(ds->image(2)[0], want.pixels[16]);
}

TEST(IdxTest, ReadsRawAndGzipFiles) {
  TempDir dir;
  SmallIdx idx;
  WriteFile(dir.File("img"), idx.images());
  WriteFile(dir.File("lbl"), idx.label_file());
  WriteGzip(dir.File("img.gz"), idx.images());
  WriteGzip(dir.File("lbl.gz"), idx.label_file());
  ExpectSmallIdx(LoadIdx(dir.File("img"), dir.File("lbl")), idx);
  ExpectSmallIdx(LoadIdx(dir.File("img.gz"), dir.File("lbl.gz")), idx);
  ExpectSmallIdx(LoadIdx(dir.File("img.gz"), dir.File("lbl")), idx);
}

// Loads `images` and `labels` contents (raw or gzip per flag) and returns the error.
Status IdxError(const std::string& images, const std::string& labels, bool gzip,
                std::string* images_path, std::string* labels_path, TempDir& dir) {
  *images_path = dir.File(gzip ? "i.gz" : "i");
  *labels_path = dir.File(gzip ? "l.gz" : "l");
  if (gzip) {
    WriteGzip(*images_path, images);
    WriteGzip(*labels_path, labels);
  } else {
    WriteFile(*images_path, images);
    WriteFile(*labels_path, labels);
  }
  Result<Dataset> ds = LoadIdx(*images_path, *labels_path);
  EXPECT_FALSE(ds.ok());
  return ds.ok() ? Status::Ok() : ds.status();
}

TEST(IdxTest, CorruptFilesGiveErrorsNamingTheFile) {
  SmallIdx idx;
  const std::string images = idx.images();
  const std::string labels = idx.label_file();
  for (bool gzip : {false, true}) {
    SCOPED_TRACE(gzip ? "gzip" : "raw");
    TempDir dir;
    std::string ip, lp;

    Status st = IdxError(images.substr(0, images.size() - 1), labels, gzip, &ip, &lp, dir);
    EXPECT_EQ(st.code(), Status::Code::kCorruption);
    EXPECT_THAT(st.message(), HasSubstr("'" + ip + "'"));
    EXPECT_THAT(st.message(), HasSubstr("truncated: the header promises 3x2x4 = 24 bytes, 23"));

    st = IdxError(images.substr(0, 10), labels, gzip, &ip, &lp, dir);
    EXPECT_THAT(st.message(), HasSubstr("'" + ip + "'"));
    EXPECT_THAT(st.message(), HasSubstr("truncated: the header needs 16 bytes"));

    st = IdxError(images + "x", labels, gzip, &ip, &lp, dir);
    EXPECT_THAT(st.message(), HasSubstr("'" + ip + "'"));
    EXPECT_THAT(st.message(), HasSubstr("1 bytes of trailing data"));

    st = IdxError(labels, images, gzip, &ip, &lp, dir);  // the files swapped
    EXPECT_EQ(st.code(), Status::Code::kCorruption);
    EXPECT_THAT(st.message(), HasSubstr("'" + ip + "'"));
    EXPECT_THAT(st.message(),
                HasSubstr("wrong magic 0x00000801, expected 0x00000803 (this is a label file)"));

    st = IdxError(images, IdxLabels({1, 2}), gzip, &ip, &lp, dir);
    EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
    EXPECT_THAT(st.message(), HasSubstr("'" + ip + "' holds 3 images"));
    EXPECT_THAT(st.message(), HasSubstr("'" + lp + "' holds 2 labels"));

    st = IdxError(images, IdxLabels({1, 10, 2}), gzip, &ip, &lp, dir);
    EXPECT_EQ(st.code(), Status::Code::kCorruption);
    EXPECT_THAT(st.message(), HasSubstr("'" + lp + "': label 10 of sample 1 is not below 10"));

    st = IdxError(IdxImages(0, 2, 4, {}), IdxLabels({}), gzip, &ip, &lp, dir);
    EXPECT_THAT(st.message(), HasSubstr("'" + ip + "': dimension 0 is 0"));
  }
}

TEST(IdxTest, DamagedGzipStreamIsCorruption) {
  TempDir dir;
  SmallIdx idx;
  WriteGzip(dir.File("i.gz"), idx.images());
  WriteFile(dir.File("l"), idx.label_file());
  std::string gz = r2f::testing::ReadFile(dir.File("i.gz"));
  WriteFile(dir.File("cut.gz"), gz.substr(0, gz.size() - 12));  // stream cut short
  Result<Dataset> ds = LoadIdx(dir.File("cut.gz"), dir.File("l"));
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), Status::Code::kCorruption);
  EXPECT_THAT(ds.status().message(), HasSubstr("'" + dir.File("cut.gz") + "'"));
}

TEST(IdxTest, MissingFileIsNotFound) {
  TempDir dir;
  WriteFile(dir.File("l"), SmallIdx().label_file());
  Result<Dataset> ds = LoadIdx(dir.File("absent"), dir.File("l"));
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), Status::Code::kNotFound);
  EXPECT_THAT(ds.status().message(), HasSubstr("'" + dir.File("absent") + "'"));
}

// CIFAR-10 record: label then 3072 pixels; pixel k of record r is (r * 7 + k) % 256.
std::string CifarRecords(const std::vector<uint8_t>& labels, int first_record) {
  std::string out;
  for (size_t i = 0; i < labels.size(); ++i) {
    out.push_back(static_cast<char>(labels[i]));
    for (int k = 0; k < 3072; ++k) {
      out.push_back(static_cast<char>((static_cast<int>(first_record + i) * 7 + k) % 256));
    }
  }
  return out;
}

TEST(CifarTest, ReadsBatchesInOrder) {
  TempDir dir;
  WriteFile(dir.File("a.bin"), CifarRecords({3, 9}, 0));
  WriteFile(dir.File("b.bin"), CifarRecords({0}, 2));
  Result<Dataset> ds = LoadCifar10({dir.File("a.bin"), dir.File("b.bin")});
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  EXPECT_EQ(ds->size(), 3u);
  EXPECT_EQ(ds->channels, 3u);
  EXPECT_EQ(ds->height, 32u);
  EXPECT_EQ(ds->width, 32u);
  EXPECT_EQ(ds->labels, (std::vector<uint8_t>{3, 9, 0}));
  ASSERT_EQ(ds->images.size(), 3u * 3072);
  for (size_t r = 0; r < 3; ++r) {
    // First pixel of each plane: red at 0, green at 1024, blue at 2048.
    for (int k : {0, 1024, 2048, 3071}) {
      EXPECT_EQ(ds->image(r)[k], (r * 7 + k) % 256) << "record " << r << " pixel " << k;
    }
  }
}

TEST(CifarTest, CorruptFilesGiveErrorsNamingTheFile) {
  TempDir dir;
  const std::string good = dir.File("good.bin");
  WriteFile(good, CifarRecords({1}, 0));

  const std::string cut = dir.File("cut.bin");
  WriteFile(cut, CifarRecords({1, 2}, 0).substr(0, 3073 + 100));
  Result<Dataset> ds = LoadCifar10({good, cut});
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), Status::Code::kCorruption);
  EXPECT_THAT(ds.status().message(), HasSubstr("'" + cut + "': truncated: 3173 bytes"));

  const std::string bad = dir.File("bad.bin");
  WriteFile(bad, CifarRecords({1, 10}, 0));
  ds = LoadCifar10({bad});
  ASSERT_FALSE(ds.ok());
  EXPECT_THAT(ds.status().message(), HasSubstr("'" + bad + "': label 10 of record 1"));

  ds = LoadCifar10({good, dir.File("missing.bin")});
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), Status::Code::kNotFound);
  EXPECT_THAT(ds.status().message(), HasSubstr("'" + dir.File("missing.bin") + "'"));

  const std::string empty = dir.File("empty.bin");
  WriteFile(empty, "");
  EXPECT_FALSE(LoadCifar10({empty}).ok());
  EXPECT_FALSE(LoadCifar10({}).ok());
}

TEST(LoadDatasetTest, IdxStandardNamesSplitAndLimit) {
  TempDir dir;
  SmallIdx idx;
  WriteGzip(dir.File("t10k-images-idx3-ubyte.gz"), idx.images());
  WriteFile(dir.File("t10k-labels-idx1-ubyte"), idx.label_file());  // raw also found
  DatasetSpec spec;
  spec.dir = dir.path();
  spec.split = "test";
  Result<Dataset> ds = LoadDataset(spec);
  ExpectSmallIdx(ds, idx);
  EXPECT_EQ(ds->name, std::filesystem::path(dir.path()).filename().string() + "/test");

  spec.limit = 2;
  ds = LoadDataset(spec);
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  EXPECT_EQ(ds->size(), 2u);
  EXPECT_EQ(ds->images.size(), 16u);
  EXPECT_EQ(ds->labels, (std::vector<uint8_t>{7, 0}));

  spec.limit = 100;  // more than there is: the whole split
  ds = LoadDataset(spec);
  ASSERT_TRUE(ds.ok());
  EXPECT_EQ(ds->size(), 3u);

  spec.split = "train";  // no train files in dir
  ds = LoadDataset(spec);
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), Status::Code::kNotFound);
  EXPECT_THAT(ds.status().message(), HasSubstr("train-images-idx3-ubyte"));
}

TEST(LoadDatasetTest, Cifar10StandardNames) {
  TempDir dir;
  for (int i = 1; i <= 5; ++i) {
    WriteFile(dir.File("data_batch_" + std::to_string(i) + ".bin"),
              CifarRecords({static_cast<uint8_t>(i)}, i));
  }
  WriteFile(dir.File("test_batch.bin"), CifarRecords({0, 8}, 0));
  DatasetSpec spec;
  spec.format = "cifar10";
  spec.dir = dir.path();
  Result<Dataset> train = LoadDataset(spec);
  ASSERT_TRUE(train.ok()) << train.status().ToString();
  EXPECT_EQ(train->labels, (std::vector<uint8_t>{1, 2, 3, 4, 5}));
  spec.split = "test";
  Result<Dataset> test = LoadDataset(spec);
  ASSERT_TRUE(test.ok());
  EXPECT_EQ(test->labels, (std::vector<uint8_t>{0, 8}));

  spec.format = "png";
  EXPECT_EQ(LoadDataset(spec).status().code(), Status::Code::kInvalidArgument);
}

TEST(DatasetSpecTest, ParsesAllKeysAndReportsErrors) {
  Result<ConfigMap> map = ConfigMap::LoadString(
      "data:\n  format: cifar10\n  dir: /data/c10\n  split: test\n  limit: 500\n", "d.yaml");
  ASSERT_TRUE(map.ok());
  ConfigMap section = map->Section("data");
  DatasetSpec spec;
  ASSERT_TRUE(ParseDatasetSpec(section, &spec).ok());
  EXPECT_EQ(spec.format, "cifar10");
  EXPECT_EQ(spec.dir, "/data/c10");
  EXPECT_EQ(spec.split, "test");
  EXPECT_EQ(spec.limit, 500);
  EXPECT_TRUE(map->Finish().ok());

  // Absent keys keep what the caller preset.
  map = ConfigMap::LoadString("data: {split: test}\n", "d.yaml");
  ASSERT_TRUE(map.ok());
  section = map->Section("data");
  DatasetSpec preset;
  preset.limit = 64;
  ASSERT_TRUE(ParseDatasetSpec(section, &preset).ok());
  EXPECT_EQ(preset.limit, 64);
  EXPECT_EQ(preset.format, "idx");
  EXPECT_EQ(preset.split, "test");

  map = ConfigMap::LoadString("data:\n  split: val\n", "d.yaml");
  section = map->Section("data");
  EXPECT_EQ(ParseDatasetSpec(section, &spec).message(),
            "d.yaml:2: key 'data.split': must be one of {train, test}, got 'val'");

  map = ConfigMap::LoadString("data:\n  limit: -1\n", "d.yaml");
  section = map->Section("data");
  EXPECT_EQ(ParseDatasetSpec(section, &spec).message(),
            "d.yaml:2: key 'data.limit': must be >= 0, got -1");

  map = ConfigMap::LoadString("data:\n  dri: /x\n", "d.yaml");
  section = map->Section("data");
  EXPECT_EQ(ParseDatasetSpec(section, &spec).message(),
            "d.yaml:2: key 'data.dri': unknown key, did you mean 'dir'? (known: dir, format, "
            "limit, split)");
}

// The real data set from Debian's dataset-fashion-mnist package, when installed.
TEST(FashionMnistTest, LoadsTheTestSplit) {
  DatasetSpec spec;
  spec.split = "test";
  if (!std::filesystem::exists(spec.dir + "/t10k-images-idx3-ubyte.gz") &&
      !std::filesystem::exists(spec.dir + "/t10k-images-idx3-ubyte")) {
    GTEST_SKIP() << "Fashion-MNIST not installed in " << spec.dir;
  }
  Result<Dataset> ds = LoadDataset(spec);
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  EXPECT_EQ(ds->size(), 10000u);
  EXPECT_EQ(ds->channels, 1u);
  EXPECT_EQ(ds->height, 28u);
  EXPECT_EQ(ds->width, 28u);
  EXPECT_EQ(ds->images.size(), 10000u * 28 * 28);
  std::vector<int> per_class(10, 0);
  for (uint8_t label : ds->labels) {
    ASSERT_LT(label, 10);
    ++per_class[label];
  }
  for (int count : per_class) EXPECT_EQ(count, 1000);  // the test split is balanced
}

}  // namespace
}  // namespace r2f
