#include "fundus/jpeg.h"

#include <jpeglib.h>

#include <csetjmp>
#include <cstdio>
#include <string>

namespace fundus {
namespace {

// libjpeg reports errors through callbacks; both end the decode by longjmp with the message kept.
struct ErrorManager {
    jpeg_error_mgr pub;
    std::jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
};

void keepMessageAndJump(j_common_ptr cinfo) {
    auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
    (*cinfo->err->format_message)(cinfo, err->message);
    std::longjmp(err->jump, 1);
}

void onMessage(j_common_ptr cinfo, int level) {
    if (level < 0) keepMessageAndJump(cinfo);  // a warning: data is corrupt or missing
}

// Decodes into `image` (owned by the caller: no object with a destructor lives in the frame that
// calls setjmp). Returns false with err.message set, or with err.message empty for CMYK/YCCK.
bool decodeInto(const std::vector<std::uint8_t>& bytes, cv::Mat& image, ErrorManager& err) {
    jpeg_decompress_struct cinfo{};
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = keepMessageAndJump;
    err.pub.emit_message = onMessage;
    err.message[0] = '\0';
    if (setjmp(err.jump)) {
        jpeg_destroy_decompress(&cinfo);
        return false;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, bytes.data(), static_cast<unsigned long>(bytes.size()));
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        jpeg_destroy_decompress(&cinfo);
        return false;
    }
    cinfo.out_color_space = cinfo.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    image.create(int(cinfo.output_height), int(cinfo.output_width), cinfo.output_components == 1 ? CV_8UC1 : CV_8UC3);
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = image.ptr<JSAMPLE>(int(cinfo.output_scanline));
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return true;
}

}  // namespace

bool isJpeg(const std::vector<std::uint8_t>& bytes) {
    return bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF;
}

Result<cv::Mat> decodeJpeg(const std::vector<std::uint8_t>& bytes) {
    cv::Mat image;
    ErrorManager err{};
    if (decodeInto(bytes, image, err)) return image;
    if (err.message[0] == '\0') return Status::error(ErrorCode::kImageFormat, "JPEG: CMYK colour space not supported");
    return Status::error(ErrorCode::kImageRead, std::string("JPEG: ") + err.message);
}

}  // namespace fundus
