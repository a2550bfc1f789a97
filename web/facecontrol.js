// FaceControl's frontend extension: workflows saved before FaceControl prefixed its socket types
// (FACES -> FACECONTROL_FACES, ...) load with the current names, so their links stay valid and new links
// can be drawn. Only slots of FaceControl nodes and links that touch one are renamed: core ComfyUI has a
// FACE_LANDMARKS type of its own, which must stay as it is.
import { app } from "../../scripts/app.js";

// Old type name -> current one, per release that renamed types; the same file drives scripts/migrate_workflows.py.
const RENAMES = await (await fetch(new URL("./renamed_types.json", import.meta.url))).json();
const RENAMED_TYPES = Object.assign({}, ...Object.values(RENAMES));

const isOurs = (node) => typeof node?.type === "string" && node.type.startsWith("FaceControl");

export function renameFaceControlTypes(graph) {
  if (!graph) return 0;
  let renamed = 0;
  const ours = new Set((graph.nodes ?? []).filter(isOurs).map((node) => node.id));
  for (const node of graph.nodes ?? []) {
    if (!ours.has(node.id)) continue;
    for (const slot of [...(node.inputs ?? []), ...(node.outputs ?? [])]) {
      if (slot && RENAMED_TYPES[slot.type]) { slot.type = RENAMED_TYPES[slot.type]; renamed++; }
    }
  }
  for (const link of graph.links ?? []) {
    // saved links are [id, origin_id, origin_slot, target_id, target_slot, type] or objects
    const asArray = Array.isArray(link);
    const origin = asArray ? link[1] : link?.origin_id;
    const target = asArray ? link[3] : link?.target_id;
    const type = asArray ? link[5] : link?.type;
    if (!RENAMED_TYPES[type] || !(ours.has(origin) || ours.has(target))) continue;
    if (asArray) link[5] = RENAMED_TYPES[type]; else link.type = RENAMED_TYPES[type];
    renamed++;
  }
  for (const subgraph of graph.definitions?.subgraphs ?? []) renamed += renameFaceControlTypes(subgraph);
  return renamed;
}

app.registerExtension({
  name: "FaceControl.RenamedTypes",
  beforeConfigureGraph(graphData) {
    const renamed = renameFaceControlTypes(graphData);
    if (renamed) console.info(`FaceControl: ${renamed} socket types of an older workflow renamed to FACECONTROL_*`);
  },
});
