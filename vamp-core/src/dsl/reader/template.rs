//! Templates (spec §1.11).

use super::prelude::*;

impl Reader {
    pub(super) fn template(&mut self, node: &Node) -> R<Template> {
        let mut o = self.obj(node, "", "a template")?;
        o.ignore(&["kind"]);
        let name = self.name(&mut o)?;
        let metadata = self.metadata(&mut o)?;
        let (d, dp) = o.required(&["definition", "def"])?;
        self.mark(&dp, d);
        let definition = json_map(d, &dp)?;
        o.finish()?;
        Ok(Template {
            name,
            metadata,
            definition,
        })
    }
}
