/* The Cityscapes label table and the maps derived from it. Data only, plus
 * the look-up tables the readers use on every pixel. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "segda/labels.h"

#define V -1 /* void category */
const sd_label_info sd_labels[SD_NUM_LABEL_IDS] = {
    {0, "unlabeled", 255, "void", V, {0, 0, 0}},
    {1, "ego vehicle", 255, "void", V, {0, 0, 0}},
    {2, "rectification border", 255, "void", V, {0, 0, 0}},
    {3, "out of roi", 255, "void", V, {0, 0, 0}},
    {4, "static", 255, "void", V, {0, 0, 0}},
    {5, "dynamic", 255, "void", V, {111, 74, 0}},
    {6, "ground", 255, "void", V, {81, 0, 81}},
    {7, "road", 0, "flat", 0, {128, 64, 128}},
    {8, "sidewalk", 1, "flat", 0, {244, 35, 232}},
    {9, "parking", 255, "flat", 0, {250, 170, 160}},
    {10, "rail track", 255, "flat", 0, {230, 150, 140}},
    {11, "building", 2, "construction", 1, {70, 70, 70}},
    {12, "wall", 3, "construction", 1, {102, 102, 156}},
    {13, "fence", 4, "construction", 1, {190, 153, 153}},
    {14, "guard rail", 255, "construction", 1, {180, 165, 180}},
    {15, "bridge", 255, "construction", 1, {150, 100, 100}},
    {16, "tunnel", 255, "construction", 1, {150, 120, 90}},
    {17, "pole", 5, "object", 2, {153, 153, 153}},
    {18, "polegroup", 255, "object", 2, {153, 153, 153}},
    {19, "traffic light", 6, "object", 2, {250, 170, 30}},
    {20, "traffic sign", 7, "object", 2, {220, 220, 0}},
    {21, "vegetation", 8, "nature", 3, {107, 142, 35}},
    {22, "terrain", 9, "nature", 3, {152, 251, 152}},
    {23, "sky", 10, "sky", 4, {70, 130, 180}},
    {24, "person", 11, "human", 5, {220, 20, 60}},
    {25, "rider", 12, "human", 5, {255, 0, 0}},
    {26, "car", 13, "vehicle", 6, {0, 0, 142}},
    {27, "truck", 14, "vehicle", 6, {0, 0, 70}},
    {28, "bus", 15, "vehicle", 6, {0, 60, 100}},
    {29, "caravan", 255, "vehicle", 6, {0, 0, 90}},
    {30, "trailer", 255, "vehicle", 6, {0, 0, 110}},
    {31, "train", 16, "vehicle", 6, {0, 80, 100}},
    {32, "motorcycle", 17, "vehicle", 6, {0, 0, 230}},
    {33, "bicycle", 18, "vehicle", 6, {119, 11, 32}},
};
#undef V

const char *const sd_class_names[SD_NUM_CLASSES] = {
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
    "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car",
    "truck", "bus", "train", "motorcycle", "bicycle",
};
const int sd_class_label_id[SD_NUM_CLASSES] = {7, 8, 11, 12, 13, 17, 19, 20, 21, 22,
                                                23, 24, 25, 26, 27, 28, 31, 32, 33};
const uint8_t sd_class_colors[SD_NUM_CLASSES][3] = {
    {128, 64, 128}, {244, 35, 232}, {70, 70, 70}, {102, 102, 156}, {190, 153, 153},
    {153, 153, 153}, {250, 170, 30}, {220, 220, 0}, {107, 142, 35}, {152, 251, 152},
    {70, 130, 180}, {220, 20, 60}, {255, 0, 0}, {0, 0, 142}, {0, 0, 70},
    {0, 60, 100}, {0, 80, 100}, {0, 0, 230}, {119, 11, 32},
};
const int sd_class_category[SD_NUM_CLASSES] = {0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 4, 5, 5, 6, 6, 6, 6, 6, 6};
const char *const sd_category_names[SD_NUM_CATEGORIES] = {
    "flat", "construction", "object", "nature", "sky", "human", "vehicle",
};

void sd_labels_id_to_train_lut(uint8_t lut[256])
{
    memset(lut, SD_IGNORE, 256);
    for (int i = 0; i < SD_NUM_LABEL_IDS; i++)
        lut[sd_labels[i].id] = (uint8_t)sd_labels[i].train_id;
}

void sd_labels_synthia_lut(uint8_t lut[256], bool lanemarking_as_road)
{
    /* SYNTHIA id -> trainId, FIELD.md's common convention */
    static const int map[][2] = {{3, 0},  {4, 1},  {2, 2},   {21, 3},  {5, 4},  {7, 5},  {15, 6},
                                 {9, 7},  {6, 8},  {16, 9},  {1, 10},  {10, 11}, {17, 12}, {8, 13},
                                 {18, 14}, {19, 15}, {20, 16}, {12, 17}, {11, 18}};
    memset(lut, SD_IGNORE, 256);
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        lut[map[i][0]] = (uint8_t)map[i][1];
    if (lanemarking_as_road)
        lut[22] = 0;
}

const sd_protocol_info sd_protocols[SD_PROTOCOL_COUNT] = {
    {"mIoU-19", 19, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18}},
    {"mIoU-16", 16, {0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18}},
    {"mIoU-13", 13, {0, 1, 2, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18}},
    /* the trainIds of CamVid's SegNet classes: road, sidewalk, building,
     * fence, pole, sign, vegetation, sky, person, car (Bicyclist, rider and
     * bicycle at once, matches neither) */
    {"mIoU-CamVid", 10, {0, 1, 2, 4, 5, 7, 8, 10, 11, 13}},
};

const char *const sd_camvid11_names[SD_CAMVID11_N] = {
    "Sky", "Building", "Pole", "Road", "Sidewalk", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist",
    "Unlabelled",
};
const uint8_t sd_camvid11_train_id[SD_CAMVID11_N] = {10, 2, 5, 0, 1, 8, 7, 4, 13, 11, 255, 255};

/* Brostow et al.'s label_colors.txt; lane markings and the road shoulder
 * are road, VegetationMisc (low vegetation) terrain, SUVPickupTruck car,
 * Truck_Bus bus; classes Cityscapes ignores or splits (Bicyclist) are 255. */
const sd_camvid_class sd_camvid32[SD_CAMVID32_N] = {
    {"Animal", {64, 128, 64}, 255},          {"Archway", {192, 0, 128}, 255},
    {"Bicyclist", {0, 128, 192}, 255},       {"Bridge", {0, 128, 64}, 255},
    {"Building", {128, 0, 0}, 2},            {"Car", {64, 0, 128}, 13},
    {"CartLuggagePram", {64, 0, 192}, 255},  {"Child", {192, 128, 64}, 11},
    {"Column_Pole", {192, 192, 128}, 5},     {"Fence", {64, 64, 128}, 4},
    {"LaneMkgsDriv", {128, 0, 192}, 0},      {"LaneMkgsNonDriv", {192, 0, 64}, 0},
    {"Misc_Text", {128, 128, 64}, 255},      {"MotorcycleScooter", {192, 0, 192}, 17},
    {"OtherMoving", {128, 64, 64}, 255},     {"ParkingBlock", {64, 192, 128}, 255},
    {"Pedestrian", {64, 64, 0}, 11},         {"Road", {128, 64, 128}, 0},
    {"RoadShoulder", {128, 128, 192}, 0},    {"Sidewalk", {0, 0, 192}, 1},
    {"SignSymbol", {192, 128, 128}, 7},      {"Sky", {128, 128, 128}, 10},
    {"SUVPickupTruck", {64, 128, 192}, 13},  {"TrafficCone", {0, 0, 64}, 255},
    {"TrafficLight", {0, 64, 64}, 6},        {"Train", {192, 64, 128}, 16},
    {"Tree", {128, 128, 0}, 8},              {"Truck_Bus", {192, 128, 192}, 15},
    {"Tunnel", {64, 0, 64}, 255},            {"VegetationMisc", {192, 192, 0}, 9},
    {"Void", {0, 0, 0}, 255},                {"Wall", {64, 192, 0}, 3},
};

int sd_protocol_parse(const char *s)
{
    if (!strncmp(s, "mIoU-", 5))
        s += 5;
    if (!strcasecmp(s, "camvid"))
        return SD_PROTOCOL_CAMVID;
    for (int p = 0; p < SD_PROTOCOL_COUNT; p++)
        if (atoi(s) == sd_protocols[p].n)
            return p;
    return -1;
}

/* the mIoU-16 protocol's classes, in trainId order (sd_protocols[SD_PROTOCOL_16]) */
static const uint8_t synthia16_ids[SD_NUM_CLASSES_SYNTHIA] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18};

const uint8_t *sd_class_set_train_ids(int classes)
{
    return classes == SD_NUM_CLASSES_SYNTHIA ? synthia16_ids : NULL;
}

bool sd_class_set_index_lut(int classes, uint8_t lut[256])
{
    for (int i = 0; i < 256; i++)
        lut[i] = classes == SD_NUM_CLASSES && i < SD_NUM_CLASSES ? (uint8_t)i : SD_IGNORE;
    if (classes == SD_NUM_CLASSES)
        return true;
    const uint8_t *ids = sd_class_set_train_ids(classes);
    if (!ids)
        return false;
    for (int k = 0; k < classes; k++)
        lut[ids[k]] = (uint8_t)k;
    return true;
}

void sd_class_set_to_train_ids(int classes, uint8_t *pred, size_t n)
{
    const uint8_t *ids = sd_class_set_train_ids(classes);
    for (size_t i = 0; ids && i < n; i++)
        pred[i] = pred[i] < classes ? ids[pred[i]] : SD_IGNORE;
}

sd_protocol sd_class_set_protocol(int classes)
{
    return classes == SD_NUM_CLASSES_SYNTHIA ? SD_PROTOCOL_16 : SD_PROTOCOL_19;
}
