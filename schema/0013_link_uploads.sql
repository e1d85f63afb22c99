-- Upload-only ("drop") links: the visitor sends files into the linked folder and sees nothing
-- of what is in it.
ALTER TABLE links ADD COLUMN upload_only BOOLEAN NOT NULL DEFAULT false;
